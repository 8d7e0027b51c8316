"use strict";
// The name registry from Node, on every backend.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { Client } = require("polylock");
const { backends, unique, needsUrl } = require("./helpers");

for (const [label, url, options, caps] of backends()) {
  test(`${label}: register, whereis, list, unregister`, options, async () => {
    needsUrl(label, url);
    const namespace = unique("registry");
    const mine = new Client(url).registry(namespace);
    const theirs = new Client(url).registry(namespace);
    assert.equal(mine.namespace, namespace);
    await mine.register("db", "10.0.0.5:5432");
    await assert.rejects(theirs.register("db", "elsewhere"), { code: "CONFLICT" });
    await assert.rejects(theirs.unregister("db"), { code: "NOT_HELD" });
    if ((await caps()).inspection) {
      assert.equal(await theirs.whereis("db"), "10.0.0.5:5432");
      assert.equal(await theirs.whereis("nobody"), null);
      assert.deepEqual(await theirs.list(), [{ name: "db", value: "10.0.0.5:5432" }]);
    } else {
      // Looking names up needs the backend's operator views.
      await assert.rejects(theirs.whereis("db"), { code: "INVALID_ARGUMENT" });
      await assert.rejects(theirs.list(), { code: "INVALID_ARGUMENT" });
    }
    await mine.unregister("db");
    if ((await caps()).inspection) assert.equal(await theirs.whereis("db"), null);
    // The name is free again, for anyone.
    await theirs.register("db", "elsewhere");
    await theirs.unregister("db");
  });
}

test("bad namespaces and names are INVALID_ARGUMENT", async () => {
  const client = new Client("memory://");
  await assert.rejects(client.registry("bad name").whereis("x"), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.registry("ns").register("a//b", "x"), { code: "INVALID_ARGUMENT" });
});

for (const [label, url, options, caps] of backends()) {
  test(`${label}: registration events`, options, async () => {
    needsUrl(label, url);
    const namespace = unique("registry-events");
    const client = new Client(url);
    const events = client.registry(namespace).events();
    if (!(await caps()).eventStream) {
      await assert.rejects(events.next(), { code: "INVALID_ARGUMENT" });
      return;
    }
    const registry = new Client(url).registry(namespace);
    // The subscription is made once the client is connected.
    await client.connect();
    await events.ready();
    await registry.register("db", "10.0.0.5:5432");
    await registry.unregister("db");
    const seen = [];
    for await (const event of events) {
      seen.push([event.name, event.registered]);
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [["db", true], ["db", false]]);
  });
}

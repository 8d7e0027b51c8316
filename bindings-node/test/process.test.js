"use strict";
// Lost callbacks when a lease is taken away (Consul: its session destroyed;
// LDLM, MongoDB: the polylock CLI releases it), watch streams, process
// lifetime, a killed holder, a Rust contender.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync, spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { Client } = require("polylock");
const { serverBackends, needsUrl, unique, contendBin, revoke, within } = require("./helpers");

/** The entry point the tests load (child processes require it by path). */
const PACKAGE = require.resolve("polylock");

for (const [label, url, options, caps] of serverBackends()) {
  test(`${label}: onLost fires once when the lease is taken away`, options, async () => {
    needsUrl(label, url);
    const lock = new Client(url).lock(unique("lost"));
    const events = [];
    const fired = new Promise((resolve) => lock.onLost((event) => { events.push(event); resolve(); }));
    const lease = await lock.acquire({ timeout: 10000 });
    await revoke(url, lock.name, lease.holder);
    await within(fired, 60000, "lost event");
    assert.equal(events.length, 1);
    assert.equal(events[0].name, lock.name);
    assert.equal(events[0].holder, lease.holder);
    assert.ok(events[0].reason.length > 0);
    if ((await caps()).fencing) assert.equal(events[0].fencingToken, lease.fencingToken);
    else assert.equal(events[0].fencingToken ?? null, null);
    assert.equal(lease.isHeld, false);
    await assert.rejects(lock.release(), { code: "LOCK_LOST" });
    // The lock is free for others.
    const other = new Client(url).lock(lock.name);
    await other.acquire({ timeout: 30000 });
    await other.release();
  });

  test(`${label}: a killed holder keeps its lease only where leases outlive connections`, options, async () => {
    needsUrl(label, url);
    const name = unique("killed");
    const script = `
      const { Client } = require(${JSON.stringify(PACKAGE)});
      new Client(${JSON.stringify(url)}).lock(${JSON.stringify(name)}, { ttl: 300000 }).acquire({ timeout: 30000 })
        .then(() => console.log("holding"), (error) => { console.error(error); process.exit(1); });
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    try {
      const holding = new Promise((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (chunk) => {
          out += chunk;
          if (out.includes("holding")) resolve();
        });
        child.on("exit", (code) => reject(new Error(`the holder exited (${code}) before holding`)));
      });
      await within(holding, 60000, "holder");
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const lock = new Client(url).lock(name);
    if ((await caps()).outlivesConnection) {
      // Nobody released it: the lease stands until its TTL (300 s) runs out.
      assert.equal(await lock.tryAcquire(), null);
    } else {
      // LDLM frees every lock of a connection when it closes.
      const lease = await lock.acquire({ timeout: 60000 });
      assert.equal(lease.isHeld, true);
      await lock.release();
    }
  });
}

test("watch streams lock and unlock events", async () => {
  const url = `memory://node-watch-${process.pid}`;
  const client = new Client(url);
  const name = unique("watch");
  const events = client.watch(name);
  const lock = client.lock(name);
  await lock.acquire();
  await lock.release();
  const seen = [];
  for await (const event of events) {
    seen.push(event.kind);
    if (seen.length === 2) break; // calls return(): the stream closes
  }
  assert.deepEqual(seen, ["acquired", "released"]);
});

test("lost callbacks do not keep the process alive", () => {
  const script = `
    const { Client } = require(${JSON.stringify(PACKAGE)});
    (async () => {
      const lock = new Client("memory://").lock("held-at-exit");
      await lock.acquire();
      lock.onLost(() => console.log("lost"));
      console.log("holding");
    })();`;
  const out = execFileSync(process.execPath, ["-e", script], { timeout: 60000 }).toString();
  assert.match(out, /holding/);
});

for (const [label, url, options, caps] of serverBackends().filter(([label]) => label === "consul" || label === "ldlm")) {
  test(`${label}: mutual exclusion with a Rust contender`, options, async () => {
    needsUrl(label, url);
    const contend = contendBin();
    const name = unique("mixed");
    const log = path.join(os.tmpdir(), `polylock-node-mixed-${process.pid}.log`);
    fs.rmSync(log, { force: true });
    const rounds = 15;
    const rust = spawn(contend, [url, name, String(rounds), log], { stdio: "inherit" });
    const exited = new Promise((resolve) => rust.on("exit", resolve));
    const lock = new Client(url).lock(name);
    for (let i = 0; i < rounds; i++) {
      const lease = await lock.acquire({ timeout: 120000 });
      fs.appendFileSync(log, `start node ${lease.fencingToken ?? 0}\n`);
      fs.appendFileSync(log, `end node ${lease.fencingToken ?? 0}\n`);
      await lock.release();
    }
    assert.equal(await exited, 0);
    const words = fs.readFileSync(log, "utf8").split(/\s+/).filter(Boolean);
    const records = [];
    for (let i = 0; i < words.length; i += 3) records.push(words.slice(i, i + 3));
    assert.equal(records.length, 4 * rounds);
    const tokens = [];
    for (let i = 0; i < records.length; i += 2) {
      const [start, end] = [records[i], records[i + 1]];
      assert.deepEqual([start[0], end[0], start[1], start[2]], ["start", "end", end[1], end[2]]);
      tokens.push(BigInt(start[2]));
    }
    if ((await caps()).fencing) for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1]);
    else assert.deepEqual(new Set(tokens), new Set([0n])); // no fencing tokens on this backend
    assert.deepEqual(new Set(records.map((r) => r[1])), new Set(["node", "rust"]));
    fs.rmSync(log);
  });
}

"use strict";
// The bad-input matrix, Node column: every case gets a typed error (a
// PolylockError and its `code`, or the documented accepted outcome) and
// loses nothing, on memory://. With POLYLOCK_BAD_INPUT_RECORDS set, each
// case appends one JSON line {"case", "lang": "node", "error"} to that
// file for tests/bad-input/table.py (README "Bad input").
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const { Client, PolylockError } = require("polylock");

const URL = `memory://node-bad-${process.pid}`;

function record(id, error) {
  const file = process.env.POLYLOCK_BAD_INPUT_RECORDS;
  if (!file) return;
  fs.appendFileSync(file, JSON.stringify({ case: id, lang: "node", error }) + "\n");
}

const unique = (base) => `node-bad/${base}/${crypto.randomUUID()}`;

/** Awaits `promise`'s rejection with a PolylockError of `code`; records it. */
async function expectCode(id, promise, code) {
  let caught;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PolylockError, `${id}: ${caught === undefined ? "accepted" : caught}`);
  assert.equal(caught.code, code, `${id}: ${caught.message}`);
  record(id, caught.code);
}

/** A client holding a lease; `check()`: still held, and a fresh lock still works. */
async function witness() {
  const client = new Client(URL);
  const held = client.lock(unique("held"));
  const lease = await held.tryAcquire();
  assert.ok(lease);
  return {
    client,
    async check() {
      assert.ok(lease.isHeld, "the held lease was lost");
      const other = client.lock(unique("after"));
      assert.ok(await other.tryAcquire());
      await other.release();
    },
  };
}

const waitUntil = async (condition, ms = 10000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, "timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

test("bad names are INVALID_ARGUMENT", async () => {
  const w = await witness();
  const cases = [
    ["name-empty", ""],
    ["name-too-long", "a".repeat(257)],
    ["name-control-char", "bad\nname"],
    ["name-control-char", "bad\0name"],
    // A lone surrogate has no UTF-8 form (it arrives as U+FFFD).
    ["name-non-utf8", "bad\udcffname"],
    ["name-non-utf8", Buffer.from([0xff, 0xfe])],
    ["name-null", null],
    ["value-huge", "n".repeat(10 << 20)],
  ];
  for (const [id, name] of cases) {
    await expectCode(id, w.client.lock(name).tryAcquire(), "INVALID_ARGUMENT");
    await w.check();
  }
  await expectCode("value-huge", w.client.lock(unique("v"), { value: "v".repeat(10 << 20) }).tryAcquire(), "INVALID_ARGUMENT");
  await w.check();
});

test("bad URLs are INVALID_ARGUMENT", async () => {
  const w = await witness();
  for (const [id, url] of [
    ["url-null", null],
    ["url-invalid", "not a url"],
    ["url-unknown-scheme", "nosuch://host"],
  ]) {
    await expectCode(id, new Client(url).connect(), "INVALID_ARGUMENT");
    await w.check();
  }
});

test("bad TTLs, limits and timeouts are INVALID_ARGUMENT", async () => {
  const w = await witness();
  const cases = [
    ["ttl-zero", { ttl: 0 }],
    ["ttl-too-large", { ttl: 1e15 }],
    ["ttl-too-large", { ttl: Infinity }],
    ["limit-zero", { limit: 0 }],
    ["limit-negative", { limit: -1 }],
    ["limit-huge", { limit: 2 ** 32 + 1 }],
  ];
  for (const [id, options] of cases) {
    await expectCode(id, w.client.lock(unique("opt"), options).tryAcquire(), "INVALID_ARGUMENT");
    await w.check();
  }
  await expectCode("ttl-too-large", new Client(URL, { defaultTtl: 1e15 }).connect(), "INVALID_ARGUMENT");
  const lock = w.client.lock(unique("timeout"));
  await expectCode("timeout-negative", lock.acquire({ timeout: -1 }), "INVALID_ARGUMENT");
  assert.ok(await lock.acquire({ timeout: 1000 }), "the lock still works");
  await lock.release();
  await w.check();
});

test("double release is NOT_HELD, release after a loss LOCK_LOST", async () => {
  const w = await witness();
  const lock = w.client.lock(unique("double"));
  await lock.acquire({ timeout: 1000 });
  await lock.release();
  await expectCode("double-release", lock.release(), "NOT_HELD");
  assert.ok(await lock.tryAcquire());
  await lock.release();

  // No operator view in Node: a lease the caller renews expires.
  const expiring = w.client.lock(unique("expired"), { ttl: 1000, autoRenew: false });
  // Proven-held ends a safety margin before the loss is reported: wait for the report.
  let lost = false;
  expiring.onLost(() => (lost = true));
  const lease = await expiring.acquire({ timeout: 1000 });
  await waitUntil(() => lost);
  assert.ok(!lease.isHeld);
  await expectCode("release-after-loss", expiring.release(), "LOCK_LOST");
  // Lost is declared a safety margin before the backend's expiry: wait for it.
  assert.ok(await expiring.acquire({ timeout: 2000 }), "free again after the loss");
  await expiring.release();
  await w.check();
});

test("a lock outlives its client object", async () => {
  let client = new Client(URL);
  const lock = client.lock(unique("closed"));
  await client.connect();
  client = null;
  globalThis.gc?.();
  const lease = await lock.acquire({ timeout: 1000 });
  assert.ok(lease.isHeld);
  await lock.release();
  record("use-after-close", "ok (the lock keeps its client)");
});

test("concurrent acquisitions on one Lock: one holds, the others USAGE", async () => {
  const client = new Client(URL);
  const lock = client.lock(unique("threads"));
  const outcomes = await Promise.allSettled(Array.from({ length: 16 }, () => lock.acquire({ timeout: 200 })));
  const held = outcomes.filter((each) => each.status === "fulfilled");
  const refused = outcomes.filter((each) => each.status === "rejected").map((each) => each.reason);
  assert.equal(held.length, 1);
  assert.ok(refused.every((each) => each instanceof PolylockError && each.code === "USAGE"), String(refused));
  assert.ok(held[0].value.isHeld);
  await lock.release();
  record("threads-one-handle", refused[0].code);
});

test("a lost listener that throws: uncaught exception, the others still called", () => {
  // In a child process: the test runner would count the uncaught exception.
  const script = `
    const { Client } = require(${JSON.stringify(require.resolve("polylock"))});
    const uncaught = [];
    process.on("uncaughtException", (error) => uncaught.push(error.message));
    (async () => {
      const lock = new Client(${JSON.stringify(URL)}).lock("node-bad/throws", { ttl: 1000, autoRenew: false });
      let called = 0;
      lock.onLost(() => { throw new Error("boom"); });
      lock.onLost(() => { called += 1; });
      for (let round = 1; round <= 2; round++) {
        const lease = await lock.acquire({ timeout: 1000 });
        lease.onLost(() => { throw new Error("lease boom"); });
        while (called < round) await new Promise((resolve) => setTimeout(resolve, 20));
        await lock.release().catch((error) => { if (error.code !== "LOCK_LOST") throw error; });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      console.log(JSON.stringify({ called, uncaught }));
    })();
  `;
  const output = execFileSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30000 });
  const { called, uncaught } = JSON.parse(output.trim().split("\n").pop());
  assert.equal(called, 2);
  assert.deepEqual(uncaught.filter((m) => m === "boom").length, 2);
  assert.deepEqual(uncaught.filter((m) => m === "lease boom").length, 2);
  record("callback-throws", "uncaughtException (others still called)");
});

"use strict";
// The shared behaviours on every backend.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { Client, Lease, PolylockError } = require("polylock");
const { backends, unique, needsUrl: needs, within } = require("./helpers");

for (const [label, url, options, caps] of backends()) {
  const needsUrl = () => needs(label, url);

  test(`${label}: acquire, tokens, release`, options, async () => {
    needsUrl();
    const name = unique("basic");
    const a = new Client(url).lock(name, { ttl: 15000 });
    const lease = await a.acquire({ timeout: 10000 });
    assert.equal(lease.isHeld, true);
    if ((await caps()).fencing) assert.equal(typeof lease.fencingToken, "bigint");
    else assert.equal(lease.fencingToken, null);
    assert.ok(lease.timeToExpiration > 0 && lease.timeToExpiration <= 15000);
    assert.equal(a.fencingToken, lease.fencingToken);
    await a.renew();
    const b = new Client(url).lock(name);
    assert.equal(await b.tryAcquire(), null);
    await assert.rejects(b.acquire({ timeout: 200 }), { code: "LOCK_TIMEOUT" });
    const first = lease.fencingToken;
    await a.release();
    assert.equal(lease.isHeld, false);
    await assert.rejects(lease.release(), { code: "NOT_HELD" });
    await assert.rejects(a.release(), { code: "NOT_HELD" });
    const next = await b.acquire({ timeout: 10000 });
    if ((await caps()).fencing) assert.ok(next.fencingToken > first);
    else assert.equal(next.fencingToken, null);
    await b.release();
  });

  test(`${label}: one lease per Lock, semaphores, limit mismatch`, options, async () => {
    needsUrl();
    const name = unique("semaphore");
    const one = new Client(url).lock(name, { limit: 2 });
    await one.acquire();
    await assert.rejects(one.tryAcquire(), { code: "USAGE" });
    const two = new Client(url).lock(name, { limit: 2 });
    assert.ok(await two.tryAcquire());
    assert.equal(await new Client(url).lock(name, { limit: 2 }).tryAcquire(), null);
    await assert.rejects(new Client(url).lock(name, { limit: 3 }).tryAcquire(), { code: "LIMIT_MISMATCH" });
    await one.release();
    await two.release();
  });

  test(`${label}: a released lock takes another limit where idle limits reset`, options, async () => {
    needsUrl();
    const name = unique("limit-reset");
    const big = new Client(url).lock(name, { limit: 3 });
    await big.acquire({ timeout: 10000 });
    await big.release();
    const other = new Client(url).lock(name, { limit: 2 });
    if ((await caps()).idleLimitResets) {
      assert.ok(await other.tryAcquire());
      await other.release();
    } else {
      // LDLM keeps an idle lock's size until its garbage collection.
      await assert.rejects(other.tryAcquire(), { code: "LIMIT_MISMATCH" });
      const same = new Client(url).lock(name, { limit: 3 });
      assert.ok(await same.tryAcquire());
      await same.release();
    }
  });

  test(`${label}: watch streams events or says INVALID_ARGUMENT`, options, async () => {
    needsUrl();
    const client = new Client(url);
    const name = unique("watch");
    const events = client.watch(name);
    if (!(await caps()).eventStream) {
      await assert.rejects(events.next(), { code: "INVALID_ARGUMENT" });
      return;
    }
    await client.connect();
    await events.ready();
    const lock = new Client(url).lock(name);
    const lease = await lock.acquire({ timeout: 10000 });
    await lock.release();
    const seen = [];
    const collect = async () => {
      for await (const event of events) {
        seen.push([event.kind, event.holder]);
        if (seen.length === 2) break;
      }
    };
    await within(collect(), 60000, "watch events").catch((error) => {
      throw new Error(`${error.message}; seen: ${JSON.stringify(seen)}`);
    });
    assert.deepEqual(seen, [["acquired", lease.holder], ["released", lease.holder]]);
  });

  test(`${label}: AbortSignal cancels a wait and takes nothing`, options, async () => {
    needsUrl();
    const name = unique("abort");
    const holder = new Client(url).lock(name);
    await holder.acquire();
    const waiter = new Client(url).lock(name);
    const controller = new AbortController();
    const waiting = waiter.acquire({ signal: controller.signal, onWaitStarted: () => controller.abort() });
    await assert.rejects(waiting, (error) => error instanceof PolylockError && error.code === "ABORTED" && error.name === "AbortError");
    await assert.rejects(waiter.acquire({ signal: controller.signal }), { code: "ABORTED" });
    await holder.release();
    const third = new Client(url).lock(name);
    await third.acquire({ timeout: 30000 });
    await third.release();
    await waiter.acquire({ timeout: 30000 });
    await waiter.release();
  });

  test(`${label}: Symbol.asyncDispose releases`, options, async () => {
    needsUrl();
    const name = unique("dispose");
    const lock = new Client(url).lock(name);
    const lease = await lock.acquire();
    await lease[Symbol.asyncDispose]();
    assert.equal(lease.isHeld, false);
    await lease[Symbol.asyncDispose](); // a second dispose is a no-op
    assert.ok(await new Client(url).lock(name).tryAcquire());
  });

  test(`${label}: a lease the caller does not renew ends at its TTL`, options, async () => {
    needsUrl();
    const name = unique("caller-renews");
    const lock = new Client(url).lock(name, { ttl: 2000, autoRenew: false });
    const lost = new Promise((resolve) => lock.onLost(resolve));
    const lease = await lock.acquire({ timeout: 10000 });
    await lease.renew(); // the caller's renewal restarts its TTL
    const event = await within(lost, 60000, "the lost event");
    assert.match(event.reason, /not renewed/);
    assert.equal(lease.isHeld, false);
    // Released, not left to expire: another client takes it.
    const taken = await new Client(url).lock(name, { ttl: 2000 }).acquire({ timeout: 60000 });
    if ((await caps()).fencing) assert.ok(taken.fencingToken > lease.fencingToken);
    await assert.rejects(lease.release(), { code: "LOCK_LOST" });
    await taken.release();
  });

  test(`${label}: the event loop keeps running while waiting`, options, async () => {
    needsUrl();
    const name = unique("loop");
    const holder = new Client(url).lock(name);
    await holder.acquire();
    const waiter = new Client(url).lock(name);
    let parked;
    const waitStarted = new Promise((resolve) => (parked = resolve));
    const waiting = waiter.acquire({ timeout: 60000, onWaitStarted: () => parked() });
    // This code runs while the waiter waits, and frees the lock for it.
    await waitStarted;
    assert.equal(waiter.isAcquiring, true);
    await holder.release();
    const lease = await waiting;
    assert.equal(waiter.isAcquiring, false);
    assert.equal(lease.isHeld, true);
    await waiter.release();
  });
}

test("bad input gets typed errors", async () => {
  const client = new Client("memory://");
  for (const bad of ["", "bad name!", "x".repeat(300)]) {
    await assert.rejects(client.lock(bad).tryAcquire(), { code: "INVALID_ARGUMENT" });
  }
  await assert.rejects(client.lock("ok", { ttl: 10 }).tryAcquire(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.lock("ok", { ttl: -5 }).tryAcquire(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.lock("ok", { limit: 0 }).tryAcquire(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.lock("ok").acquire({ timeout: -1 }), { code: "INVALID_ARGUMENT" });
  await assert.rejects(new Client("nope://").connect(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.lock(/** @type {any} */ (42)).tryAcquire(), { code: "INVALID_ARGUMENT" });
  // Only a Lease the addon made is read as one (not another native object).
  const lock = client.lock("typed");
  await lock.acquire();
  const holder = /** @type {() => string} */ (Object.getOwnPropertyDescriptor(Lease.prototype, "holder")?.get);
  for (const other of [{}, new Lease(), /** @type {any} */ (lock)._native, await /** @type {any} */ (client)._ready]) {
    assert.throws(() => holder.call(other), (error) => error instanceof PolylockError && error.code === "INVALID_ARGUMENT");
  }
  await lock.release();
});

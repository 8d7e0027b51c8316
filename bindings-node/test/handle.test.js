"use strict";
// A Lock is the core's LeaseSlot: a release that failed transiently can be
// retried, an AbortSignal cancels a pending acquisition (racing a grant
// too) without moving the fencing token, lost listeners can be removed, a
// Lock acquires again after a release or a loss, and nothing a client made
// (locks, listeners, leases, watches) keeps it alive.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const path = require("node:path");
const readline = require("node:readline");
const { Client, PolylockError } = require("polylock");
const { REPO, backends, serverBackends, needsUrl, unique, consulUrl, revoke, within } = require("./helpers");

/** A promise and its resolve function. */
function signal() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve: /** @type {(value?: any) => void} */ (resolve) };
}

/**
 * tests/support/cut_proxy.py in front of `target` (host:port): its address,
 * and `command("cut" | "restore")`, resolved once the proxy answers `ok`.
 */
async function cutProxy(t, target) {
  const child = spawn("python3", [path.join(REPO, "tests/support/cut_proxy.py"), target], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  t.after(async () => {
    child.stdin.end();
    child.kill();
    await exited;
  });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on("line", (line) => {
    const index = waiting.findIndex(([prefix]) => line.startsWith(prefix));
    if (index >= 0) waiting.splice(index, 1)[0][1](line);
  });
  const next = (prefix) => within(new Promise((resolve) => waiting.push([prefix, resolve])), 30000, `cut_proxy: ${prefix}`);
  const listening = await next("listening ");
  const command = async (word) => {
    const answered = next(`ok ${word}`);
    child.stdin.write(`${word}\n`);
    await answered;
  };
  return { address: listening.slice("listening ".length).trim(), command };
}

test("consul: a release that failed while the backend was cut off can be retried", async (t) => {
  const url = consulUrl(t);
  if (!url) return;
  const consul = new URL(url.replace(/^consul:/, "http:"));
  const proxy = await cutProxy(t, consul.host);
  const proxied = `consul://${proxy.address}${consul.search}`;
  const name = unique("retry-release");
  const lock = new Client(proxied).lock(name, { ttl: 60000 });
  const lease = await lock.acquire({ timeout: 30000 });
  await proxy.command("cut");
  await assert.rejects(lock.release(), (error) => error instanceof PolylockError && error.code === "CONNECTION");
  assert.equal(lock.isHeld, true, "a transient failure keeps the lease");
  assert.equal(lease.isHeld, true);
  await assert.rejects(lock.tryAcquire(), { code: "USAGE" });
  // Through the lease object too.
  await assert.rejects(lease.release(), { code: "CONNECTION" });
  assert.equal(lease.isHeld, true);
  await proxy.command("restore");
  await lock.release();
  assert.equal(lock.isHeld, false);
  assert.equal(lease.isHeld, false);
  await assert.rejects(lock.release(), { code: "NOT_HELD" });
  // Released for real: another client (straight to Consul) takes it.
  const other = new Client(url).lock(name);
  assert.ok(await other.tryAcquire(), "the lock is free after the retried release");
  await other.release();
});

for (const [label, url, options, caps] of backends()) {
  const rounds = label === "memory" ? 200 : 20;

  test(`${label}: a cancel racing a grant leaves the lock free (${rounds} rounds)`, options, async () => {
    needsUrl(label, url);
    const name = unique("race");
    // A short TTL: on LDLM a grant the server made as the wait was cancelled
    // stands until its lock timer (one TTL) runs out.
    const short = { ttl: 3000 };
    const holder = new Client(url).lock(name, short);
    const waiter = new Client(url).lock(name, short);
    const probe = new Client(url).lock(name, short);
    const outcomes = { granted: 0, aborted: 0 };
    for (let round = 0; round < rounds; round++) {
      await holder.acquire({ timeout: 30000 });
      const controller = new AbortController();
      const parked = signal();
      const waiting = waiter
        .acquire({ timeout: 60000, signal: controller.signal, onWaitStarted: parked.resolve })
        .then((lease) => ({ lease }), (error) => ({ error }));
      if (round % 2 === 0) await parked.promise; // half the rounds race the grant to a parked wait
      // The release frees the lock for the waiter while the abort cancels it.
      const released = holder.release();
      controller.abort();
      await released;
      const { lease, error } = await waiting;
      if (lease) {
        assert.equal(lease.isHeld, true);
        outcomes.granted++;
        await waiter.release();
      } else {
        assert.ok(error instanceof PolylockError && error.code === "ABORTED", `round ${round}: ${error}`);
        outcomes.aborted++;
      }
      assert.equal(waiter.isAcquiring, false);
      assert.equal(waiter.isHeld, false);
      // Whatever happened, the lock is free (a late grant was released).
      assert.ok(await probe.acquire({ timeout: 30000 }), `round ${round}: the lock is free`);
      await probe.release();
    }
    assert.equal(outcomes.granted + outcomes.aborted, rounds);
  });

  test(`${label}: a cancel after the wait started is ABORTED and takes nothing`, options, async () => {
    needsUrl(label, url);
    const name = unique("cancel");
    const holder = new Client(url).lock(name);
    const held = await holder.acquire({ timeout: 30000 });
    const waiter = new Client(url).lock(name);
    const controller = new AbortController();
    const parked = signal();
    const waiting = waiter.acquire({ signal: controller.signal, onWaitStarted: parked.resolve });
    await parked.promise;
    assert.equal(waiter.isAcquiring, true);
    controller.abort();
    await assert.rejects(waiting, (error) => error instanceof PolylockError && error.code === "ABORTED" && error.name === "AbortError");
    assert.equal(waiter.isAcquiring, false);
    assert.equal(waiter.fencingToken, null);
    await holder.release();
    const next = new Client(url).lock(name);
    const lease = await next.acquire({ timeout: 30000 });
    if ((await caps()).fencing) {
      if (label === "memory") {
        // memory://'s tokens count grants: nobody took it in between.
        assert.equal(lease.fencingToken, held.fencingToken + 1n);
      } else {
        assert.ok(lease.fencingToken > held.fencingToken);
      }
    }
    await next.release();
    // The cancelled Lock acquires again.
    assert.ok(await waiter.tryAcquire());
    await waiter.release();
  });

  test(`${label}: a Lock acquires again after a release`, options, async () => {
    needsUrl(label, url);
    const lock = new Client(url).lock(unique("reuse"));
    const tokens = [];
    for (let i = 0; i < 3; i++) {
      const lease = await lock.acquire({ timeout: 30000 });
      assert.equal(lock.fencingToken, lease.fencingToken);
      tokens.push(lease.fencingToken);
      await lock.release();
      assert.equal(lease.isHeld, false);
      assert.equal(lock.isHeld, false);
    }
    if ((await caps()).fencing) assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2]);
  });
}

for (const [label, url, options, caps] of serverBackends()) {
  test(`${label}: removed lost listeners are not called; kept ones once per lease; a lost Lock acquires again`, options, async () => {
    needsUrl(label, url);
    const lock = new Client(url).lock(unique("listeners"), { ttl: 15000 });
    const heard = [];
    let told = signal();
    const kept = (event) => {
      heard.push(["kept", event.holder]);
      told.resolve();
    };
    const removedByOff = (event) => heard.push(["removed by offLost", event.holder]);
    lock.onLost(kept);
    const unsubscribe = lock.onLost((event) => heard.push(["unsubscribed", event.holder]));
    lock.onLost(removedByOff);
    unsubscribe();
    unsubscribe(); // a second call is a no-op
    assert.equal(lock.offLost(removedByOff), true);
    assert.equal(lock.offLost(removedByOff), false);

    const holders = [];
    for (let round = 0; round < 2; round++) {
      const lease = await lock.acquire({ timeout: 30000 });
      holders.push(lease.holder);
      await revoke(url, lock.name, lease.holder);
      await within(told.promise, 60000, `round ${round}: lost event`);
      told = signal();
      assert.equal(lease.isHeld, false);
      assert.equal(lock.isHeld, false);
      // After the first loss the release reports it; after the second the
      // Lock simply acquires again.
      if (round === 0) await assert.rejects(lock.release(), { code: "LOCK_LOST" });
    }
    const last = await lock.acquire({ timeout: 30000 });
    assert.equal(last.isHeld, true);
    await lock.release();
    assert.deepEqual(heard, holders.map((holder) => ["kept", holder]));
    if ((await caps()).fencing) assert.ok(last.fencingToken !== null);
  });
}

test("a client with a lock, a lost listener, a released lease and a watch is freed", async () => {
  assert.equal(typeof global.gc, "function", "run with node --expose-gc (npm test does)");
  // A Lease wraps its native view itself (freed by the wrap's finalizer).
  const names = ["client", "native client", "lock", "native lock", "lease", "watch", "native watch"];
  const gone = new Set();
  const allGone = signal();
  const registry = new FinalizationRegistry((what) => {
    gone.add(what);
    if (gone.size === names.length) allGone.resolve();
  });
  await (async () => {
    const url = `memory://node-freed-${process.pid}`;
    const client = new Client(url);
    const name = unique("freed");
    const lock = client.lock(name);
    // The callback holds the lock and the client: still not a root.
    lock.onLost(() => console.log("lost", lock.name, client));
    const events = client.watch(name);
    await events.ready();
    const lease = await lock.acquire();
    lease.onLost(() => console.log("lost", lease.holder, lock.name));
    await lock.release();
    const first = await events.next();
    assert.equal(first.value.kind, "acquired");
    registry.register(client, "client");
    registry.register(await client._ready, "native client");
    registry.register(lock, "lock");
    registry.register(/** @type {any} */ (lock)._native, "native lock");
    registry.register(lease, "lease");
    registry.register(events, "watch");
    registry.register(await /** @type {any} */ (events)._inner, "native watch");
  })();
  for (let i = 0; i < 100 && gone.size < names.length; i++) {
    global.gc();
    // Finalizers run between turns of the event loop: give it one.
    await Promise.race([allGone.promise, new Promise((resolve) => setImmediate(resolve))]);
  }
  assert.deepEqual(
    names.filter((what) => !gone.has(what)),
    [],
    "these were kept alive",
  );
});

// Last in this file: it replaces the classes the addon constructs.
test("a second copy of the module (require cache cleared) gets its own error and lease classes", async () => {
  const first = require("polylock");
  delete require.cache[require.resolve("polylock")];
  const second = require("polylock");
  assert.notEqual(second.PolylockError, first.PolylockError);
  const client = new second.Client(`memory://node-reload-${process.pid}`);
  const lock = client.lock(unique("reload"));
  assert.ok((await lock.tryAcquire()) instanceof second.Lease);
  await assert.rejects(lock.tryAcquire(), (error) => error instanceof second.PolylockError && error.code === "USAGE");
  await lock.release();
});

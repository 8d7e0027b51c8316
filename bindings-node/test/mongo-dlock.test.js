"use strict";
// polylock/mongo-dlock: mongo-dlock's README usage (its quickstart as it is
// written but for the require) on FerretDB and every other backend, try-lock,
// waits woken by an unlock, lock/unlock events seen in another process, a
// lease left to expire without autorefresh, bad options, close.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const path = require("node:path");
const readline = require("node:readline");
const { Client, PolylockError } = require("polylock");
const MDL = require("polylock/mongo-dlock"); // the one line a mongo-dlock user changes
const { backends, needsUrl, within } = require("./helpers");

/** The project the tests run in (polylock installed in its node_modules). */
const PROJECT = path.resolve(__dirname, "..");
const BOUND = 60000;

let serial = 0;
/** A collection of its own per test (on other backends: a name prefix). */
const freshColl = () => `mdl_test_${process.pid}_${++serial}`;

/** Settles with a callback API's (err, res). */
const call = (/** @type {(cb: (err: any, res?: any) => void) => void} */ fn) =>
  new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));

/** The first `event` of `emitter` (bounded). */
const next = (/** @type {import("node:events").EventEmitter} */ emitter, /** @type {string} */ event) =>
  within(new Promise((resolve) => emitter.once(event, resolve)), BOUND, `${event} event`);

/** Every `event` of `emitter` from now on; `until(match)` awaits one (bounded). */
function collect(emitter, event) {
  const seen = [];
  const waiters = new Set();
  emitter.on(event, (e) => {
    seen.push(e);
    for (const waiter of waiters) waiter();
  });
  return {
    seen,
    until(match) {
      return within(
        new Promise((resolve) => {
          const check = () => {
            const hit = seen.find(match);
            if (hit) {
              waiters.delete(check);
              resolve(hit);
            }
          };
          waiters.add(check);
          check();
        }),
        BOUND,
        `${event} event`,
      );
    },
  };
}

/** A fencing token as the other process prints it. */
const printed = (/** @type {bigint | null} */ token) => (token === null ? null : String(token));

/** A factory that the test closes at its end. */
async function factory(t, opts) {
  const Locks = await call((cb) => MDL(opts, cb));
  t.after(() => Locks.close());
  return Locks;
}

/** The native polylock URL and lock name a DLock of `id` maps onto. */
function nativeOf(url, coll, id) {
  if (url.startsWith("mongodb")) return [`${url.replace(/\/?$/, "")}/dlocks?collection=${coll}`, id];
  return [url, `dlocks/${coll}/${id}`];
}

for (const [label, url, options, caps] of backends()) {
  const opts = () => ({ url, coll: freshColl() });

  test(`${label}: mongo-dlock's README quickstart`, options, async () => {
    needsUrl(label, url);
    const events = [];
    const finished = new Promise((done) => {
      // mongo-dlock's README, with `opts` filled in and `done` at the ends.
      const opts = { url, coll: freshColl() };

      MDL (opts, (err, Locks) => {
        if (err) {
          // manage error
          return done (err);
        }

        var l1 = Locks.dlock ('some-task');
        l1.on ('lock', (evt) => events.push (evt));

        l1.wait_lock (err => {
          // do whatever the task is...
          if (err) return done (err);
          events.push ({ held: l1.locked });

          l1.unlock (err => {
            // and close
            Locks.close (err => done (err))
          })
        });
      });
    });
    assert.equal(await within(finished, BOUND, "quickstart"), null);
    assert.deepEqual(events.filter((e) => "held" in e), [{ held: true }]);
  });

  test(`${label}: try-lock is false while held elsewhere; unlock says whether it held`, options, async (t) => {
    needsUrl(label, url);
    const o = opts();
    const [A, B] = [await factory(t, o), await factory(t, o)];
    const [a, b, sibling] = [A.dlock("task"), B.dlock("task"), A.dlock("task")];
    assert.equal(await call((cb) => a.lock(cb)), true);
    assert.equal(a.locked, true);
    if ((await caps()).fencing) assert.equal(typeof a.fencing_token, "bigint");
    else assert.equal(a.fencing_token, null);
    assert.equal(await call((cb) => b.lock(cb)), false);
    assert.equal(await call((cb) => sibling.lock(cb)), false); // another DLock of the same id, same factory
    assert.equal(await call((cb) => a.lock(cb)), false); // no recursive lock
    assert.equal(await call((cb) => b.unlock(cb)), false); // never held: false, no error
    assert.equal(await call((cb) => a.unlock(cb)), true);
    assert.equal(await call((cb) => a.unlock(cb)), false);
    assert.equal(await call((cb) => b.lock(cb)), true);
    assert.equal(await call((cb) => b.unlock(cb)), true);
  });

  test(`${label}: a DLock is polylock's lock of the same id`, options, async (t) => {
    needsUrl(label, url);
    const coll = freshColl();
    const Locks = await factory(t, { url, coll });
    const dlock = Locks.dlock("shared-with-native");
    assert.equal(await call((cb) => dlock.lock(cb)), true);
    const [nativeUrl, name] = nativeOf(url, coll, "shared-with-native");
    const native = new Client(nativeUrl).lock(name);
    assert.equal(await native.tryAcquire(), null);
    assert.equal(await call((cb) => dlock.unlock(cb)), true);
    const lease = await native.acquire({ timeout: BOUND });
    if ((await caps()).fencing) assert.ok(lease.fencingToken > 0n);
    assert.equal(await call((cb) => dlock.lock(cb)), false);
    await native.release();
  });

  test(`${label}: wait_lock gets the lock once its holder unlocks`, options, async (t) => {
    needsUrl(label, url);
    const o = opts();
    const [A, B] = [await factory(t, o), await factory(t, o)];
    const [a, b] = [A.dlock({ id: "handoff" }), B.dlock({ id: "handoff" })];
    const aLocks = collect(a, "lock");
    assert.equal(await call((cb) => a.lock(cb)), true);
    const aHolder = a.holder;
    let unlocked = false;
    const waited = call((cb) => b.wait_lock(cb));
    assert.equal(await call((cb) => b.wait_lock(cb)), false); // one wait at a time
    assert.equal(await call((cb) => b.lock(cb)), false); // this DLock is waiting
    unlocked = true;
    assert.equal(await call((cb) => a.unlock(cb)), true);
    assert.equal(await within(waited, BOUND, "wait_lock"), true);
    assert.equal(unlocked, true);
    assert.equal(b.locked, true);
    assert.notEqual(b.holder, aHolder);
    if (A.distributed_events) {
      // a (another factory) sees b's acquisition.
      const event = await aLocks.until((e) => e.holder === b.holder);
      assert.deepEqual([event.id, event.locked, event.fencing_token], ["handoff", true, b.fencing_token]);
    }
    assert.equal(await call((cb) => b.unlock(cb)), true);
  });

  test(`${label}: lock and unlock events name the id, locally on backends without a stream`, options, async (t) => {
    needsUrl(label, url);
    const Locks = await factory(t, opts());
    assert.equal(Locks.distributed_events, (await caps()).eventStream);
    const [one, two] = [Locks.dlock("evented"), Locks.dlock("evented")];
    const locked = next(two, "lock");
    assert.equal(await call((cb) => one.lock(cb)), true);
    const lockEvent = await locked;
    assert.equal(lockEvent.id, "evented");
    assert.equal(lockEvent.locked, true);
    assert.equal(lockEvent.kind, "acquired");
    assert.equal(lockEvent.fencing_token, one.fencing_token);
    const unlockedEvent = next(two, "unlock");
    const ownUnlock = next(one, "unlock");
    assert.equal(await call((cb) => one.unlock(cb)), true);
    for (const event of [await unlockedEvent, await ownUnlock]) {
      assert.equal(event.id, "evented");
      assert.equal(event.locked, false);
      assert.equal(event.kind, "released");
      assert.equal(event.holder, lockEvent.holder);
    }
  });

  test(`${label}: without autorefresh a lock ends exp_delta after it was taken`, options, async (t) => {
    needsUrl(label, url);
    const o = { ...opts(), exp_delta: 1000, autorefresh: false };
    const [A, B] = [await factory(t, o), await factory(t, o)];
    const [a, b] = [A.dlock("expiring"), B.dlock({ id: "expiring", autorefresh: true })];
    const lost = next(a, "lost");
    assert.equal(await call((cb) => a.lock(cb)), true);
    assert.equal(await within(call((cb) => b.wait_lock(cb)), BOUND, "wait_lock after expiry"), true);
    const event = await lost;
    assert.equal(event.id, "expiring");
    assert.match(event.reason, /renew/);
    assert.equal(a.locked, false);
    assert.equal(await call((cb) => a.unlock(cb)), false);
    assert.equal(await call((cb) => b.unlock(cb)), true);
  });

  test(`${label}: refresh keeps a lock taken without autorefresh`, options, async (t) => {
    needsUrl(label, url);
    const Locks = await factory(t, { ...opts(), autorefresh: false });
    const dlock = Locks.dlock();
    assert.match(dlock.id(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(await call((cb) => dlock.refresh(cb)), false);
    assert.equal(await call((cb) => dlock.lock(cb)), true);
    assert.equal(await call((cb) => dlock.refresh(cb)), true);
    assert.equal(await call((cb) => dlock.unlock(cb)), true);
  });

  test(`${label}: close unlocks nothing, ends waits, and the lock expires`, options, async (t) => {
    needsUrl(label, url);
    const o = { ...opts(), exp_delta: 2000 };
    const [A, B] = [await factory(t, o), await factory(t, o)];
    const [a, waiter] = [A.dlock("closing"), A.dlock("closing")];
    assert.equal(await call((cb) => a.lock(cb)), true);
    const waiting = call((cb) => waiter.wait_lock(cb));
    await call((cb) => A.close(cb));
    await assert.rejects(within(waiting, BOUND, "wait_lock at close"), (error) => error instanceof PolylockError && error.code === "ABORTED");
    await call((cb) => A.close(cb)); // a second close does nothing
    assert.throws(() => A.dlock("more"), { code: "USAGE" });
    await assert.rejects(call((cb) => a.lock(cb)), { code: "USAGE" });
    await assert.rejects(call((cb) => a.unlock(cb)), { code: "USAGE" });
    // Not unlocked: busy for the others until its exp_delta runs out.
    const b = B.dlock("closing");
    assert.equal(await call((cb) => b.lock(cb)), false);
    assert.equal(await within(call((cb) => b.wait_lock(cb)), 90000, "wait_lock after the closed factory's lease expired"), true);
    assert.equal(await call((cb) => b.unlock(cb)), true);
  });
}

for (const [label, url, options, caps] of backends().filter(([label]) => label !== "memory")) {
  // memory:// lives in one process: this needs a server.
  test(`${label}: lock and unlock events reach a DLock in another process`, options, async (t) => {
    needsUrl(label, url);
    if (!(await caps()).eventStream) {
      const Locks = await factory(t, { url });
      assert.equal(Locks.distributed_events, false);
      t.skip("no lock event stream on this backend: a factory sees only its own DLocks' events (distributed_events false)");
      return;
    }
    const o = { url, coll: freshColl() };
    const child = spawnWatcher(o, "across");
    t.after(() => child.kill());
    await child.line((l) => l === "ready");
    const Locks = await factory(t, o);
    const here = Locks.dlock("across");
    const [locks, unlocks] = [collect(here, "lock"), collect(here, "unlock")];
    // The other process sees this one's lock and unlock.
    assert.equal(await call((cb) => here.lock(cb)), true);
    const [holder, token] = [here.holder, printed(here.fencing_token)];
    const locked = await child.line((l) => l.startsWith("lock "));
    assert.deepEqual(JSON.parse(locked.slice(5)), { id: "across", locked: true, kind: "acquired", holder, fencing_token: token });
    assert.equal(await call((cb) => here.unlock(cb)), true);
    const unlocked = await child.line((l) => l.startsWith("unlock "));
    assert.deepEqual(JSON.parse(unlocked.slice(7)), { id: "across", locked: false, kind: "released", holder, fencing_token: token });
    // And this one sees the other's.
    child.send("lock");
    await child.line((l) => l === "locked true");
    const event = await locks.until((e) => e.holder !== holder);
    assert.equal(event.id, "across");
    assert.equal(await call((cb) => here.lock(cb)), false);
    child.send("unlock");
    await child.line((l) => l === "unlocked true");
    const released = await unlocks.until((e) => e.holder === event.holder);
    assert.deepEqual([released.id, released.locked, released.kind], ["across", false, "released"]);
    child.send("close");
    await child.line((l) => l === "closed");
  });
}

/**
 * A `node` process with a DLock of `id` that prints `ready`, its lock and
 * unlock events as `lock JSON` / `unlock JSON` lines, and obeys `lock`,
 * `unlock` and `close` lines on its stdin.
 */
function spawnWatcher(opts, id) {
  const script = `
    const MDL = require("polylock/mongo-dlock");
    const readline = require("node:readline");
    const show = (e) => JSON.stringify({ ...e, fencing_token: e.fencing_token === null ? null : String(e.fencing_token) });
    MDL(${JSON.stringify(opts)}, (err, Locks) => {
      if (err) { console.error(err); process.exit(1); }
      const dlock = Locks.dlock(${JSON.stringify(id)});
      dlock.on("lock", (e) => console.log("lock " + show(e)));
      dlock.on("unlock", (e) => console.log("unlock " + show(e)));
      dlock.subscribed(() => console.log("ready"));
      readline.createInterface({ input: process.stdin }).on("line", (line) => {
        if (line === "lock") dlock.lock((err, res) => console.log(err ? "error " + err.code : "locked " + res));
        if (line === "unlock") dlock.unlock((err, res) => console.log(err ? "error " + err.code : "unlocked " + res));
        if (line === "close") Locks.close(() => { console.log("closed"); process.exit(0); });
      });
    });`;
  // Run from the project so that require("polylock/mongo-dlock") resolves as a user's would.
  const child = spawn(process.execPath, ["-e", script], { cwd: PROJECT, stdio: ["pipe", "pipe", "inherit"] });
  const lines = [];
  const waiters = new Set();
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    for (const waiter of waiters) waiter();
  });
  let exited = null;
  child.on("exit", (code) => {
    exited = code;
    for (const waiter of waiters) waiter();
  });
  let seen = 0;
  return {
    /** The next line (after those already matched) that `match` accepts; bounded. */
    line(match) {
      return within(
        new Promise((resolve, reject) => {
          const check = () => {
            while (seen < lines.length) {
              const line = lines[seen++];
              if (match(line)) {
                waiters.delete(check);
                return resolve(line);
              }
            }
            if (exited !== null) reject(new Error(`the watcher exited (${exited}); its lines: ${lines.join(" | ")}`));
          };
          waiters.add(check);
          check();
        }),
        BOUND,
        "the watcher's line",
      );
    },
    send(line) {
      child.stdin.write(`${line}\n`);
    },
    kill() {
      if (exited === null) child.kill("SIGKILL");
    },
  };
}

test("mongo-dlock's url, db and coll as one polylock URL", () => {
  const url = MDL.polylock_url;
  assert.equal(url(undefined), "mongodb://localhost:27017/dlocks?collection=dlocks");
  assert.equal(url({ url: "mongodb://h:1,g:2/?w=1", db: "app", coll: "locks" }), "mongodb://h:1,g:2/app?w=1&collection=locks");
  // The path of mongo-dlock's URL only chose where to authenticate.
  assert.equal(url({ url: "mongodb://u:p%40ss@h/admin2" }), "mongodb://u:p%40ss@h/dlocks?authSource=admin2&collection=dlocks");
  assert.equal(url({ url: "mongodb://u:p@h" }), "mongodb://u:p@h/dlocks?authSource=admin&collection=dlocks");
  assert.equal(url({ url: "mongodb://u:p@h/x?authsource=y" }), "mongodb://u:p@h/dlocks?authsource=y&collection=dlocks");
  // A polylock collection option stands unless coll is given.
  assert.equal(url({ url: "mongodb+srv://c.example/?collection=mine" }), "mongodb+srv://c.example/dlocks?collection=mine");
  assert.equal(url({ url: "mongodb+srv://c.example/?collection=mine", coll: "theirs" }), "mongodb+srv://c.example/dlocks?collection=theirs");
  // Other backends: the URL as given.
  assert.equal(url({ url: "consul://127.0.0.1:8500", db: "x" }), "consul://127.0.0.1:8500");
  assert.throws(() => url({ url: "mongodb://h", db: "a/b" }), { code: "INVALID_ARGUMENT" });
});

test("mongo-dlock's quickstart needs FerretDB in CI", () => {
  if (process.env.CI) assert.ok(process.env.POLYLOCK_TEST_FERRETDB_URL, "POLYLOCK_TEST_FERRETDB_URL is not set (CI set)");
});

test("bad options get typed errors", async (t) => {
  const isInvalid = (/** @type {RegExp} */ message) => (/** @type {any} */ error) =>
    error instanceof PolylockError && error.code === "INVALID_ARGUMENT" && message.test(error.message);
  const url = `memory://mdl-bad-${process.pid}`;
  for (const [opts, message] of [
    [{ url, exp_delta: 500 }, /exp_delta .*1000 ms/],
    [{ url, exp_delta: 100 * 24 * 3600 * 1000 }, /exp_delta .*24 h/],
    [{ url, exp_delta: "5000" }, /exp_delta must be a number/],
    [{ url, autorefresh: "yes" }, /autorefresh must be a boolean/],
    [{ url, wait_lock_period: 0 }, /wait_lock_period must be a positive/],
    [{ url, grace: -1 }, /grace/],
    [{ url: 42 }, /url must be a string/],
    [{ url: "mongodb://h", db: "a.b" }, /not a MongoDB database name/],
    [{ url: "mongodb://h", coll: "a$b" }, /not a MongoDB collection name/],
    [{ url: "nope://x" }, /./],
    ["opts", /must be an object/],
  ]) {
    await assert.rejects(call((cb) => MDL(/** @type {any} */ (opts), cb)), isInvalid(message), JSON.stringify(opts));
  }
  assert.throws(() => MDL({ url }, /** @type {any} */ (undefined)), isInvalid(/callback/));
  const Locks = await factory(t, { url });
  assert.throws(() => Locks.dlock({ exp_delta: 10 }), isInvalid(/exp_delta/));
  assert.throws(() => Locks.dlock(/** @type {any} */ (42)), isInvalid(/id \(string\) or an options object/));
  assert.throws(() => Locks.dlock({ id: "" }), isInvalid(/non-empty string/));
  const dlock = Locks.dlock("fine");
  assert.throws(() => dlock.lock(/** @type {any} */ ("cb")), isInvalid(/callback/));
  assert.throws(() => dlock.wait_lock(/** @type {any} */ (null)), isInvalid(/callback/));
  // An id polylock does not take fails the DLock's calls, with the core's reason.
  await assert.rejects(call((cb) => Locks.dlock("bad id!").lock(cb)), isInvalid(/contains ' '/));
});

test("a DLock the program dropped keeps its lock until unlocked or closed", async (t) => {
  const url = `memory://mdl-dropped-${process.pid}`;
  const Locks = await factory(t, { url });
  // Nothing but the callback refers to the DLock while it holds the lock.
  await call((cb) => Locks.dlock("dropped").lock(cb));
  for (let i = 0; i < 3; i++) {
    global.gc?.();
    await new Promise(setImmediate);
  }
  const other = await factory(t, { url });
  assert.equal(await call((cb) => other.dlock("dropped").lock(cb)), false);
});

test("a name's subscription starts with its first listener and ends with its last DLock", { skip: global.gc ? false : "needs node --expose-gc" }, async (t) => {
  const Locks = await factory(t, { url: `memory://mdl-topics-${process.pid}` });
  const topics = /** @type {any} */ (Locks)._topics;
  let dlock = Locks.dlock("subscribed-late");
  const topic = topics.get("subscribed-late");
  assert.equal(topic.events, null); // no listener: no subscription
  const seen = next(dlock, "lock");
  assert.notEqual(topic.events, null);
  await call((cb) => dlock.lock(cb));
  assert.equal((await seen).id, "subscribed-late");
  await call((cb) => dlock.unlock(cb));
  dlock = null;
  // Collected, the DLock's name leaves the factory (FinalizationRegistry: await its turn, bounded).
  await within(
    (async () => {
      while (topics.has("subscribed-late")) {
        global.gc();
        await new Promise(setImmediate);
      }
    })(),
    BOUND,
    "the topic's end",
  );
  assert.equal(topic.closed, true);
});

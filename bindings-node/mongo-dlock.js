// polylock/mongo-dlock: mongo-dlock's callback API over polylock.
//
//   const MDL = require("polylock/mongo-dlock"); // was require("mongo-dlock")
//
// `MDL(opts, (err, Locks) => …)`, `Locks.dlock(id | opts)`, `Locks.close`,
// and DLock (an EventEmitter) with `lock`, `wait_lock`, `unlock` and the
// `lock` / `unlock` events of its id from every process. Each call maps onto
// polylock's own API (index.js): a DLock is a polylock `Lock`, its events
// come from `client.watch(name)`, its waits are polylock's (woken by the
// backend's change notifications, not by a retry timer). No lock logic
// lives here. mongo-dlock.d.ts documents every option and what it means
// under polylock.
"use strict";

const { EventEmitter } = require("node:events");
const crypto = require("node:crypto");
const { Client, PolylockError } = require("./index.js");

/** mongo-dlock's defaults. */
const DEFAULTS = Object.freeze({
  url: "mongodb://localhost:27017",
  db: "dlocks",
  coll: "dlocks",
  exp_delta: 5000,
  wait_lock_period: 5000,
});

/** polylock's shortest and longest lease TTL, in ms (core/src/options.rs). */
const MIN_TTL_MS = 1000;
const MAX_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * @param {string} message
 * @returns {PolylockError}
 */
function invalid(message) {
  return new PolylockError("INVALID_ARGUMENT", message);
}

/** @returns {PolylockError} */
function closed() {
  return new PolylockError("USAGE", "this MDL (the Locks object) was closed");
}

/** True for undefined and null: the option was not given. */
const absent = (/** @type {unknown} */ value) => value === undefined || value === null;

/**
 * Checks the shape of the options both MDL and dlock take; throws.
 * @param {Record<string, unknown>} opts
 * @param {string} what
 */
function checkLockOptions(opts, what) {
  const { exp_delta, autorefresh, wait_lock_period } = opts;
  if (!absent(exp_delta)) {
    if (typeof exp_delta !== "number" || !Number.isFinite(exp_delta)) {
      throw invalid(`${what}.exp_delta must be a number of ms, not ${String(exp_delta)}`);
    }
    if (exp_delta < MIN_TTL_MS || exp_delta > MAX_TTL_MS) {
      throw invalid(
        `${what}.exp_delta is the lease TTL: from ${MIN_TTL_MS} ms (polylock's shortest) to ${MAX_TTL_MS} ms (24 h), got ${exp_delta}`,
      );
    }
  }
  if (!absent(autorefresh) && typeof autorefresh !== "boolean") {
    throw invalid(`${what}.autorefresh must be a boolean, not ${String(autorefresh)}`);
  }
  if (!absent(wait_lock_period)) {
    if (typeof wait_lock_period !== "number" || !Number.isFinite(wait_lock_period) || wait_lock_period <= 0) {
      throw invalid(`${what}.wait_lock_period must be a positive number of ms, not ${String(wait_lock_period)}`);
    }
  }
}

/** Characters MongoDB does not take in a database name. */
const BAD_DB_NAME = /[/\\. "$*<>:|?\0]/;

/**
 * The factory's settings from MDL's opts; throws on a bad option.
 * @param {unknown} opts
 */
function factorySettings(opts) {
  if (absent(opts)) opts = {};
  if (typeof opts !== "object") throw invalid(`MDL options must be an object, not ${typeof opts}`);
  const o = /** @type {Record<string, unknown>} */ (opts);
  for (const key of ["url", "db", "coll", "notif_url", "notif_channel"]) {
    if (!absent(o[key]) && typeof o[key] !== "string") throw invalid(`MDL options.${key} must be a string, not ${typeof o[key]}`);
  }
  if (!absent(o.grace) && !(typeof o.grace === "number" && o.grace >= 0)) {
    throw invalid(`MDL options.grace must be a non-negative number of seconds, not ${String(o.grace)}`);
  }
  checkLockOptions(o, "MDL options");
  const db = /** @type {string | undefined} */ (o.db ?? undefined);
  const coll = /** @type {string | undefined} */ (o.coll ?? undefined);
  if (db !== undefined && (db.length === 0 || db.length > 63 || BAD_DB_NAME.test(db))) {
    throw invalid(`MDL options.db ${JSON.stringify(db)} is not a MongoDB database name`);
  }
  if (coll !== undefined && (coll.length === 0 || /[$\0]/.test(coll) || coll.startsWith("system."))) {
    throw invalid(`MDL options.coll ${JSON.stringify(coll)} is not a MongoDB collection name`);
  }
  const url = /** @type {string} */ (o.url || DEFAULTS.url);
  const mongo = /^mongodb(\+srv)?:\/\//i.test(url);
  return {
    url: mongo ? mongoUrl(url, db ?? DEFAULTS.db, coll) : url,
    // Off MongoDB, db and coll (when given) name a namespace of lock names,
    // as a database and collection do on MongoDB.
    prefix: !mongo && (db !== undefined || coll !== undefined) ? `${db ?? DEFAULTS.db}/${coll ?? DEFAULTS.coll}/` : "",
    lock: lockSettings(o, null),
  };
}

/**
 * A DLock's exp_delta, autorefresh and wait_lock_period: its own, else the
 * factory's, else mongo-dlock's defaults.
 * @param {Record<string, unknown>} opts
 * @param {{ exp_delta: number, autorefresh: boolean, wait_lock_period: number } | null} inherited
 */
function lockSettings(opts, inherited) {
  return {
    exp_delta: /** @type {number} */ (opts.exp_delta ?? inherited?.exp_delta ?? DEFAULTS.exp_delta),
    // mongo-dlock refreshes unless autorefresh is false (undefined → on).
    autorefresh: /** @type {boolean} */ (opts.autorefresh ?? inherited?.autorefresh ?? true),
    wait_lock_period: /** @type {number} */ (opts.wait_lock_period ?? inherited?.wait_lock_period ?? DEFAULTS.wait_lock_period),
  };
}

/**
 * mongo-dlock's (url, db, coll) as one polylock MongoDB URL: the database
 * is the URL's path, the collection its `collection` parameter. The path
 * of mongo-dlock's URL only chose the authentication database, so with
 * credentials and no `authSource` it becomes `authSource` (default admin).
 * A `collection` in the URL stands unless `coll` is given.
 * @param {string} url
 * @param {string} db
 * @param {string | undefined} coll
 * @returns {string}
 */
function mongoUrl(url, db, coll) {
  const parts = /^([^:]+:\/\/)([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/.exec(url);
  if (!parts) throw invalid("MDL options.url is not a mongodb:// URL (scheme://[user:password@]host[:port][/db][?options])");
  const [, scheme, authority, path = "", query = ""] = parts;
  const params = new URLSearchParams(query.slice(1));
  const has = (/** @type {string} */ name) => [...params.keys()].some((key) => key.toLowerCase() === name.toLowerCase());
  if (authority.includes("@") && !has("authSource")) {
    params.set("authSource", decodeURIComponent(path.slice(1)) || "admin");
  }
  if (coll !== undefined || !params.has("collection")) params.set("collection", coll ?? DEFAULTS.coll);
  return `${scheme}${authority}/${encodeURIComponent(db)}?${params}`;
}

/**
 * Calls `cb(...args)` on a later tick, outside any Promise chain: an
 * exception in it is an uncaught exception, as in any callback API.
 * @param {Function} cb
 * @param {...unknown} args
 */
function deliver(cb, ...args) {
  process.nextTick(() => cb(...args));
}

/**
 * @param {unknown} cb
 * @param {string} what
 */
function checkCallback(cb, what) {
  if (typeof cb !== "function") throw invalid(`${what} needs a callback function`);
}

/** Errors that mean "this DLock did not hold the lock": res false, no error. */
const NOT_HOLDING = new Set(["NOT_HELD", "LOCK_LOST"]);

/**
 * The DLocks of one lock name in one factory (held weakly), and their
 * shared subscription to the name's distributed events, started when the
 * first `lock` / `unlock` listener is added to one of them.
 * @private
 */
class Topic {
  /**
   * @param {Client} client
   * @param {string} name
   * @param {string} id
   * @param {boolean} distributed
   */
  constructor(client, name, id, distributed) {
    /** @type {Set<WeakRef<DLock>>} */
    this.dlocks = new Set();
    this.id = id;
    /** @private */
    this.client = client;
    /** @private */
    this.name = name;
    /** @private */
    this.distributed = distributed;
    /** @type {import("./index.js").LockEvents | null} */
    this.events = null;
    /** Resolves once the subscription (if any) sees every change. @type {Promise<void>} */
    this.ready = Promise.resolve();
    this.closed = false;
  }

  /** Subscribes to the name's events (once; not without an event stream). */
  start() {
    if (this.events || !this.distributed || this.closed) return;
    const events = (this.events = this.client.watch(this.name));
    this.ready = events.ready();
    this.ready.catch(() => {});
    // Read only once ready: the addon's ready() waits behind a pending
    // next(). The stream keeps what arrives meanwhile.
    this.ready.then(() => this.pump(events), () => {});
  }

  /** @param {DLock} dlock */
  add(dlock) {
    this.dlocks.add(new WeakRef(dlock));
  }

  /** Forgets collected DLocks; how many live. @returns {number} */
  prune() {
    for (const ref of this.dlocks) if (!ref.deref()) this.dlocks.delete(ref);
    return this.dlocks.size;
  }

  /**
   * Emits `event` on every live DLock of the name, each on its own tick.
   * @param {{ id: string, locked: boolean }} event
   */
  emit(event) {
    for (const ref of this.dlocks) {
      const dlock = ref.deref();
      if (!dlock) {
        this.dlocks.delete(ref);
        continue;
      }
      process.nextTick(() => dlock.emit(event.locked ? "lock" : "unlock", { ...event }));
    }
  }

  /**
   * Reads the name's lock event stream until it ends (close).
   * @param {import("./index.js").LockEvents} events
   */
  async pump(events) {
    for (;;) {
      let next;
      try {
        next = await events.next();
      } catch {
        return; // only a refused watch rejects, and capabilities ruled that out
      }
      if (next.done) return;
      const { kind, holder, fencingToken } = next.value;
      this.emit({ id: this.id, locked: kind === "acquired", kind, holder, fencing_token: fencingToken ?? null });
    }
  }

  /** Ends the subscription. */
  close() {
    this.closed = true;
    this.events?.return().catch(() => {});
  }
}

/**
 * The DLock factory `MDL` hands to its callback (mongo-dlock's
 * MongoDLock), over one polylock Client.
 */
class MongoDLock {
  /**
   * @param {Client} client
   * @param {ReturnType<typeof factorySettings>} settings
   * @param {import("./index.js").Capabilities} capabilities
   */
  constructor(client, settings, capabilities) {
    /** The polylock Client underneath, for polylock's own API. @type {Client} */
    this.client = client;
    /** What the backend can do. @type {import("./index.js").Capabilities} */
    this.capabilities = capabilities;
    /**
     * True when `lock` / `unlock` events reach DLocks in every process;
     * false where the backend has no lock event stream (ldlm://): then only
     * this factory's own DLocks' acquisitions and releases are emitted.
     * @type {boolean}
     */
    this.distributed_events = capabilities.eventStream;
    /** @private */
    this._settings = settings;
    /** @private @type {Map<string, Topic>} */
    this._topics = new Map();
    /** @private */
    this._abort = new AbortController();
    /** @private */
    this._closed = false;
    /**
     * The DLocks holding or acquiring a lease, held strongly (the topics
     * hold DLocks weakly): a DLock the program dropped keeps its lock.
     * @private @type {Set<DLock>}
     */
    this._busy = new Set();
    /**
     * Ends a name's subscription once its last DLock was collected.
     * @private @type {FinalizationRegistry<string>}
     */
    this._gone = new FinalizationRegistry((name) => {
      const topic = this._topics.get(name);
      if (topic && topic.prune() === 0) {
        topic.close();
        this._topics.delete(name);
      }
    });
  }

  /**
   * A distributed lock: `dlock("some-task")` or `dlock({ id, exp_delta,
   * autorefresh, wait_lock_period })`; what is not given comes from the
   * options given to MDL. Without an id, a new uuid v4. Throws a
   * PolylockError (INVALID_ARGUMENT) for bad options, USAGE after close.
   * @param {string | { id?: string, exp_delta?: number, autorefresh?: boolean, wait_lock_period?: number }} [opts]
   * @returns {DLock}
   */
  dlock(opts) {
    if (this._closed) throw closed();
    if (typeof opts === "string") opts = { id: opts };
    else if (absent(opts)) opts = {};
    else if (typeof opts !== "object") throw invalid(`dlock takes an id (string) or an options object, not ${typeof opts}`);
    const o = /** @type {Record<string, unknown>} */ (opts);
    if (!absent(o.id) && (typeof o.id !== "string" || o.id.length === 0)) {
      throw invalid(`dlock id must be a non-empty string, not ${JSON.stringify(o.id)}`);
    }
    checkLockOptions(o, "dlock options");
    const id = /** @type {string} */ (o.id ?? crypto.randomUUID());
    const name = this._settings.prefix + id;
    let topic = this._topics.get(name);
    if (!topic) {
      topic = new Topic(this.client, name, id, this.distributed_events);
      this._topics.set(name, topic);
    }
    const dlock = new DLock(this, topic, name, lockSettings(o, this._settings.lock));
    topic.add(dlock);
    this._gone.register(dlock, name);
    return dlock;
  }

  /**
   * Closes the factory; `cb(null)` once done (a second close is a no-op).
   * Like mongo-dlock, it unlocks nothing: each lock its DLocks hold stops
   * being renewed and is freed by the backend when its exp_delta runs out
   * (as if the process had died). Pending wait_locks end with an ABORTED
   * error; the event subscriptions end; every later call of the factory or
   * its DLocks fails with USAGE.
   * @param {(err: Error | null) => void} [cb]
   */
  close(cb) {
    if (cb !== undefined) checkCallback(cb, "close");
    if (!this._closed) {
      this._closed = true;
      this._abort.abort();
      for (const dlock of this._busy) dlock._abandon();
      this._busy.clear();
      for (const topic of this._topics.values()) topic.close();
      this._topics.clear();
    }
    if (cb) deliver(cb, null);
  }
}

/**
 * One distributed lock (mongo-dlock's DLock): a polylock Lock with TTL
 * exp_delta. An EventEmitter: `lock` and `unlock` with `{ id, locked, kind,
 * holder, fencing_token }` for every acquisition and release of its id by
 * any process (see MongoDLock.distributed_events; the DLocks of an id in a
 * factory share one subscription, made when the first `lock` / `unlock`
 * listener is added and ended when they are all collected or the factory
 * is closed), and `lost` with `{ id,
 * holder, fencing_token, reason }` when a lease this DLock held ended
 * without unlock (not renewed in time, or taken away).
 */
class DLock extends EventEmitter {
  /**
   * Made by `Locks.dlock`; not for user code.
   * @param {MongoDLock} factory
   * @param {Topic} topic
   * @param {string} name
   * @param {ReturnType<typeof lockSettings>} settings
   */
  constructor(factory, topic, name, settings) {
    super();
    /** @private */
    this._factory = factory;
    /** @private */
    this._topic = topic;
    /** @private */
    this._settings = settings;
    /** @private */
    this._lock = factory.client.lock(name, { ttl: settings.exp_delta, autoRenew: settings.autorefresh });
    this.on("newListener", (event) => {
      if (event === "lock" || event === "unlock") topic.start();
    });
    /** @private The holder id of the last lease taken. */
    this._holder = "";
    this._lock.onLost((event) => {
      this._idle();
      this.emit("lost", { id: topic.id, holder: event.holder, fencing_token: event.fencingToken ?? null, reason: event.reason });
    });
  }

  /** The lock's id. @returns {string} */
  id() {
    return this._topic.id;
  }

  /** True while this DLock holds the lock (a proven lease). @returns {boolean} */
  get locked() {
    return this._lock.isHeld;
  }

  /**
   * The backend's id of the lease this DLock holds (as in the events'
   * `holder`); null without one. @returns {string | null}
   */
  get holder() {
    return this._lock.isHeld ? this._holder : null;
  }

  /**
   * The fencing token of the lease this DLock holds (strictly increasing
   * per id on backends with fencing); null without one. @returns {bigint | null}
   */
  get fencing_token() {
    return this._lock.isHeld ? this._lock.fencingToken : null;
  }

  /**
   * Tries once: `cb(null, true)` if this DLock took the lock, `cb(null,
   * false)` if it is held elsewhere, or already by (or being waited for
   * by) this DLock.
   * @param {(err: Error | null, res?: boolean) => void} cb
   */
  lock(cb) {
    checkCallback(cb, "lock");
    if (this._factory._closed) return deliver(cb, closed());
    if (this._lock.isHeld || this._lock.isAcquiring) return deliver(cb, null, false);
    this._factory._busy.add(this);
    this._topic.ready
      .then(() => this._lock.tryAcquire())
      .then(
        (lease) => this._granted(cb, lease),
        (error) => {
          this._idle();
          if (error.code === "USAGE") deliver(cb, null, false); // a concurrent call of this DLock
          else deliver(cb, error);
        },
      );
  }

  /**
   * Waits until this DLock holds the lock: `cb(null, true)`; `cb(null,
   * false)` at once if it holds it already or a wait is under way; `cb(err)`
   * on a failure, or ABORTED when the factory is closed meanwhile. The wait
   * is polylock's, woken by the backend when the lock is freed;
   * wait_lock_period matters only on a backend without change
   * notifications, where it bounds the time between attempts.
   * @param {(err: Error | null, res?: boolean) => void} cb
   */
  wait_lock(cb) {
    checkCallback(cb, "wait_lock");
    if (this._factory._closed) return deliver(cb, closed());
    if (this._lock.isHeld || this._lock.isAcquiring) return deliver(cb, null, false);
    const signal = this._factory._abort.signal;
    this._factory._busy.add(this);
    this._topic.ready.then(() => this._wait(signal)).then(
      (lease) => this._granted(cb, lease),
      (error) => {
        this._idle();
        if (error.code === "USAGE" && !this._factory._closed) deliver(cb, null, false);
        else if (error.code === "ABORTED") deliver(cb, new PolylockError("ABORTED", `wait_lock of "${this.id()}" ended: its MDL was closed`));
        else deliver(cb, error);
      },
    );
  }

  /**
   * The acquisition behind wait_lock.
   * @private
   * @param {AbortSignal} signal
   */
  async _wait(signal) {
    if (this._factory.capabilities.changeNotifications) return this._lock.acquire({ signal });
    // No change notifications: a fresh attempt at least every wait_lock_period.
    for (;;) {
      try {
        return await this._lock.acquire({ timeout: this._settings.wait_lock_period, signal });
      } catch (error) {
        if (/** @type {PolylockError} */ (error).code !== "LOCK_TIMEOUT") throw error;
      }
    }
  }

  /**
   * Reports an acquisition; one that finished after close is left to expire.
   * @private
   * @param {(err: Error | null, res?: boolean) => void} cb
   * @param {import("./index.js").Lease | null} lease
   */
  _granted(cb, lease) {
    if (!lease) this._idle();
    else {
      this._holder = lease.holder;
      if (this._factory._closed) this._abandon();
      else if (!this._factory.distributed_events) this._topic.emit(this._event(true, "acquired", lease.fencingToken));
    }
    deliver(cb, null, lease !== null);
  }

  /**
   * A local event (backends without an event stream).
   * @private
   * @param {boolean} locked
   * @param {string} kind
   * @param {bigint | null} token
   */
  _event(locked, kind, token) {
    return { id: this.id(), locked, kind, holder: this._holder, fencing_token: token };
  }

  /**
   * Releases the lock: `cb(null, true)`; `cb(null, false)` if this DLock did
   * not hold it (never locked, unlocked already, or its lease ended); `cb(err)`
   * on a failure (after CONNECTION the lock is still held: unlock again).
   * @param {(err: Error | null, res?: boolean) => void} [cb]
   */
  unlock(cb) {
    if (cb !== undefined) checkCallback(cb, "unlock");
    const done = cb ?? (() => {});
    if (this._factory._closed) return deliver(done, closed());
    const token = this._lock.fencingToken;
    this._lock.release().then(
      () => {
        this._idle();
        if (!this._factory.distributed_events) this._topic.emit(this._event(false, "released", token));
        deliver(done, null, true);
      },
      (error) => {
        if (!NOT_HOLDING.has(error.code)) return deliver(done, error); // still held (CONNECTION): retry
        this._idle();
        deliver(done, null, false);
      },
    );
  }

  /**
   * Renews the lease now (polylock's extra; with autorefresh false the only
   * way to keep the lock past exp_delta): `cb(null, true)`, or `cb(null,
   * false)` if this DLock does not hold the lock.
   * @param {(err: Error | null, res?: boolean) => void} cb
   */
  refresh(cb) {
    checkCallback(cb, "refresh");
    if (this._factory._closed) return deliver(cb, closed());
    this._lock.renew().then(
      () => deliver(cb, null, true),
      (error) => (NOT_HOLDING.has(error.code) ? deliver(cb, null, false) : deliver(cb, error)),
    );
  }

  /**
   * Subscribes (if no `lock` / `unlock` listener did yet) and calls
   * `cb(null)` once this DLock sees every lock/unlock event of its id
   * (polylock's `LockEvents.ready`; on Consul one round trip after the
   * subscription). lock and wait_lock wait for it themselves.
   * @param {(err: Error | null) => void} cb
   */
  subscribed(cb) {
    checkCallback(cb, "subscribed");
    this._topic.start();
    this._topic.ready.then(() => deliver(cb, null), (error) => deliver(cb, error));
  }

  /**
   * Lets the factory drop its strong reference, unless a lease or an
   * acquisition is under way.
   * @private
   */
  _idle() {
    if (!this._lock.isHeld && !this._lock.isAcquiring) this._factory._busy.delete(this);
  }

  /**
   * Stops renewing a held lease without releasing it (close).
   * @private
   */
  _abandon() {
    // The addon's NativeLock (index.js's Lock keeps it in _native once ready).
    /** @type {any} */ (this._lock)._native?.abandon();
  }
}

/**
 * Connects to the backend and calls `cb(null, Locks)`, or `cb(err)`: a
 * PolylockError (INVALID_ARGUMENT for a bad option, CONNECTION, AUTH, …).
 * @param {Record<string, unknown> | undefined} opts
 * @param {(err: Error | null, Locks?: MongoDLock) => void} cb
 */
function MDL(opts, cb) {
  checkCallback(cb, "MDL");
  let settings;
  try {
    settings = factorySettings(opts);
  } catch (error) {
    return deliver(cb, error);
  }
  const client = new Client(settings.url);
  client.capabilities().then(
    (capabilities) => deliver(cb, null, new MongoDLock(client, settings, capabilities)),
    (error) => deliver(cb, error),
  );
}

/**
 * The polylock URL MDL connects to for `opts` (url, db, coll), e.g. for
 * the polylock CLI or `new Client(url)` of polylock's own API (on MongoDB a
 * lock's name there is its id; elsewhere `<db>/<coll>/<id>` when db or coll
 * is given). Throws a PolylockError (INVALID_ARGUMENT) for bad options.
 * @param {Record<string, unknown> | undefined} opts
 * @returns {string}
 */
MDL.polylock_url = (opts) => factorySettings(opts).url;

MDL.MDL = MDL;
MDL.MongoDLock = MongoDLock;
MDL.DLock = DLock;
MDL.PolylockError = PolylockError;

module.exports = MDL;

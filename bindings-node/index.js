// polylock for Node.js: distributed locks and counting semaphores with
// fencing tokens over Consul, MongoDB and memory://, from one Rust core.
//
// Every backend call returns a Promise made by the addon and settled from
// polylock's own threads; nothing blocks the event loop. A Lock is the
// core's LeaseSlot (one lease at a time); this file adds argument checks,
// AbortSignal, Symbol.asyncDispose, async iteration and the lost-listener
// bookkeeping. index.d.ts is generated from the JSDoc here (npm run types)
// and checked in CI.
"use strict";

// The addon: prebuilt for this platform, else built from source (native.js).
const native = require("./native.js");

/**
 * Every polylock failure. `code` is stable: LOCK_TIMEOUT, LOCK_LOST,
 * NOT_HELD, LIMIT_MISMATCH, CONFLICT, CONNECTION, AUTH, INVALID_ARGUMENT,
 * BACKEND, USAGE, ABORTED (a wait ended by its AbortSignal; `name` is
 * "AbortError" then). The addon makes these itself, code included.
 */
class PolylockError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    /** @type {string} */
    this.code = code;
    this.name = code === "ABORTED" ? "AbortError" : "PolylockError";
  }
}

/**
 * @param {string} message
 * @returns {PolylockError}
 */
function invalid(message) {
  return new PolylockError("INVALID_ARGUMENT", message);
}

/** @returns {PolylockError} */
function aborted() {
  return new PolylockError("ABORTED", "the wait was aborted by its AbortSignal");
}

/**
 * The problem with an argument of the wrong type, or null.
 * @param {Record<string, unknown> | undefined} options
 * @param {Record<string, "string" | "number" | "integer">} types
 * @param {string} what
 * @returns {PolylockError | null}
 */
function optionsProblem(options, types, what) {
  if (options === undefined || options === null) return null;
  if (typeof options !== "object") return invalid(`${what} must be an object, not ${typeof options}`);
  for (const [key, type] of Object.entries(types)) {
    const value = options[key];
    if (value === undefined || value === null) continue;
    const ok =
      type === "integer"
        ? Number.isInteger(value) && /** @type {number} */ (value) >= 0 && /** @type {number} */ (value) <= 0xffffffff
        : typeof value === type;
    if (!ok) return invalid(`${what}.${key} must be ${type === "integer" ? "a non-negative integer" : `a ${type}`}, not ${String(value)}`);
  }
  return null;
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {PolylockError | null}
 */
function stringProblem(value, what) {
  return typeof value === "string" ? null : invalid(`${what} must be a string, not ${typeof value}`);
}

/**
 * Lost listeners by id: the addon's listeners hold no JavaScript value, only
 * this id, so a registration never keeps its Lock (or Lease), its callback
 * or its client alive. The owner holds its callbacks; this map holds the
 * owner weakly. Shared by every copy of this module in the process (the
 * addon calls the dispatcher of the copy loaded last).
 * @type {{ owners: Map<number, WeakRef<LostListeners>>, gone: FinalizationRegistry<number>, next: number }}
 */
const lost = /** @type {any} */ (globalThis)[Symbol.for("polylock.lostListeners")] ??= (() => {
  /** @type {Map<number, WeakRef<LostListeners>>} */
  const owners = new Map();
  return { owners, gone: new FinalizationRegistry((/** @type {number} */ id) => owners.delete(id)), next: 1 };
})();

/**
 * The lost callbacks of one Lock (every lease) or one Lease (once).
 * @private
 */
class LostListeners {
  /** @param {boolean} once */
  constructor(once) {
    /** @type {Map<number, { callback: (event: LostEvent) => void, token: object }>} */
    this.entries = new Map();
    this.once = once;
  }

  /**
   * @param {(event: LostEvent) => void} callback
   * @returns {number} the listener's id
   */
  add(callback) {
    const id = lost.next;
    lost.next = id >= 0xffffffff ? 1 : id + 1;
    const token = {};
    this.entries.set(id, { callback, token });
    lost.owners.set(id, new WeakRef(this));
    lost.gone.register(this, id, token);
    return id;
  }

  /**
   * @param {number} id
   * @returns {boolean} whether it was registered
   */
  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    lost.owners.delete(id);
    lost.gone.unregister(entry.token);
    return true;
  }
}

/**
 * Called by the addon on the JS thread when a lease is lost: the listener
 * `id`'s callback, if its owner and the registration still live.
 * @param {number} id
 * @param {LostEvent} event
 */
function dispatchLost(id, event) {
  const owner = lost.owners.get(id)?.deref();
  const entry = owner?.entries.get(id);
  if (!owner || !entry) return;
  if (owner.once) owner.remove(id);
  entry.callback(event);
}

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] The backend's ACL token (else the URL or CONSUL_HTTP_TOKEN).
 * @property {number} [defaultTtl] TTL in ms of locks that give none (15000).
 * @property {string} [defaultValue] Holder value stored with leases (host name and pid).
 */

/**
 * @typedef {object} Capabilities What a backend can do.
 * @property {boolean} fencing Leases carry fencing tokens that strictly increase per name.
 * @property {boolean} lossWatch A lost lease is noticed before the next renewal.
 * @property {boolean} changeNotifications Waits are woken by the server, not by polling.
 * @property {boolean} semaphores Limits above 1 (counting semaphores) work.
 * @property {boolean} sharedRenewal One renewal keeps many leases (a Consul session).
 * @property {boolean} eventStream `watch` streams every client's acquisitions and releases.
 * @property {boolean} inspection Operator views and the registry's look-ups work.
 * @property {boolean} serverWait The server waits for the lock on the client's behalf (LDLM).
 * @property {boolean} idleLimitResets A lock nobody holds takes a new limit at once.
 * @property {boolean} outlivesConnection A lease outlives the connection that took it.
 */

/**
 * @typedef {object} LockOptions
 * @property {number} [ttl] Lease TTL in ms; renewed every third of it until released.
 * @property {number} [limit] 1: mutex (default); N: counting semaphore.
 * @property {string} [value] Holder value stored with the lease.
 * @property {boolean} [autoRenew] false: the caller renews (`renew()` within each TTL, or the lease
 *   is released and reported lost); true (default): polylock renews.
 */

/**
 * @typedef {object} AcquireOptions
 * @property {number} [timeout] Longest wait in ms (default: as long as it takes; 0: no wait).
 * @property {AbortSignal} [signal] Aborting it ends the wait with an ABORTED error.
 * @property {() => void} [onWaitStarted] Called once (on the JS thread, before
 *   the Promise settles) when the wait parked because the lock was busy: for
 *   tests and tools that act exactly then.
 */

/**
 * @typedef {object} LostEvent
 * @property {string} name The lock's name.
 * @property {string} holder The backend's id of the lost lease.
 * @property {bigint | null | undefined} fencingToken The lost lease's fencing token.
 * @property {string} reason Why the lease was lost.
 */

/**
 * @typedef {object} LockEvent
 * @property {"acquired" | "released" | "expired" | "lost"} kind What happened.
 * @property {string} name The lock's name.
 * @property {string} holder The holder the event is about.
 * @property {bigint | null | undefined} fencingToken Its fencing token, if any.
 */

/**
 * A lease of a Lock (`await using lease = await lock.acquire()` releases
 * it). A view: the Lock keeps the lease, so dropping this object releases
 * nothing; `release()` and `renew()` act on this lease, never on a later one
 * of the same Lock.
 */
class Lease {
  /** Made (and wrapped) by the addon when a Lock acquires; not for user code. */
  constructor() {
    /** @private @type {LostListeners | null} */
    this._lost = null;
  }

  /** The lock's name. @returns {string} */
  get name() {
    return native.leaseName(this);
  }

  /** The backend's id of this lease (Consul session id, …). @returns {string} */
  get holder() {
    return native.leaseHolder(this);
  }

  /** Strictly increasing per name; null where the backend has none. @returns {bigint | null} */
  get fencingToken() {
    return native.leaseFencingToken(this) ?? null;
  }

  /** The granted TTL in ms. @returns {number} */
  get ttl() {
    return native.leaseTtl(this);
  }

  /** True while the lease is held and proven. @returns {boolean} */
  get isHeld() {
    return native.leaseIsHeld(this);
  }

  /** Ms the lease is still proven held (0 once it is not). @returns {number} */
  get timeToExpiration() {
    return native.leaseTimeToExpiration(this);
  }

  /**
   * Releases the lease (NOT_HELD when released already, LOCK_LOST when
   * lost). After a transient failure (CONNECTION) it is still held, and
   * the release can be retried.
   * @returns {Promise<void>}
   */
  release() {
    return native.leaseRelease(this);
  }

  /**
   * Renews the lease now (polylock also renews it on its own).
   * @returns {Promise<void>}
   */
  renew() {
    return native.leaseRenew(this);
  }

  /**
   * Calls `callback(event)` once if this lease is lost (at once if it is
   * lost already), while this Lease object lives. Returns a function that
   * removes the callback. The callback never keeps the process (or this
   * object) alive; an exception in it is an uncaught exception.
   * @param {(event: LostEvent) => void} callback
   * @returns {() => void} removes the callback
   */
  onLost(callback) {
    if (typeof callback !== "function") throw invalid("onLost needs a function");
    this._lost ??= new LostListeners(true);
    const listeners = this._lost;
    const id = listeners.add(callback);
    native.leaseOnLost(this, id);
    return () => {
      listeners.remove(id);
    };
  }

  /**
   * Releases unless released or lost already.
   * @returns {Promise<void>}
   */
  async [Symbol.asyncDispose]() {
    if (this.isHeld) {
      try {
        await this.release();
      } catch (error) {
        if (!(error instanceof PolylockError) || (error.code !== "NOT_HELD" && error.code !== "LOCK_LOST")) throw error;
      }
    }
  }
}

native.init(PolylockError, Lease, dispatchLost);

/**
 * A lock handle; holds at most one lease at a time (the core's LeaseSlot).
 * A Lock acquires again once its lease was released or lost.
 */
class Lock {
  /**
   * @param {Client} client
   * @param {string} name
   * @param {LockOptions} [options]
   */
  constructor(client, name, options) {
    /** @private @type {any} */
    this._native = null;
    const problem =
      stringProblem(name, "a lock name") ?? optionsProblem(options, { ttl: "number", limit: "integer", value: "string", autoRenew: "boolean" }, "lock options");
    /** @private @type {Promise<any>} */
    this._ready = problem
      ? Promise.reject(problem)
      : client._ready.then((inner) => (this._native = inner.lock(name, options ?? {})));
    this._ready.catch(() => {});
    /** @private */
    this._lost = new LostListeners(false);
    /** The lock's name. @type {string} */
    this.name = name;
  }

  /**
   * Takes the lock, waiting at most `timeout` ms (default: as long as it
   * takes). Rejects with LOCK_TIMEOUT when the time runs out, ABORTED when
   * `signal` aborts while the acquisition is pending (the wait is
   * cancelled; a lease an attempt in flight brings back is released), USAGE
   * when this Lock already holds or is acquiring a lease. An abort after the
   * lock was granted does not undo the grant.
   * @param {AcquireOptions} [options]
   * @returns {Promise<Lease>}
   */
  async acquire(options = {}) {
    const { timeout, signal, onWaitStarted } = options;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) {
      throw invalid(`timeout must be a non-negative number of ms, not ${String(timeout)}`);
    }
    if (onWaitStarted !== undefined && typeof onWaitStarted !== "function") throw invalid("onWaitStarted must be a function");
    if (signal?.aborted) throw aborted();
    const inner = this._native ?? (await this._ready);
    if (signal?.aborted) throw aborted();
    const pending = inner.acquire(timeout ?? null, onWaitStarted ?? null);
    let lease;
    if (signal) {
      const onAbort = () => inner.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        lease = await pending;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    } else {
      lease = await pending;
    }
    if (lease === null) throw new PolylockError("LOCK_TIMEOUT", `lock "${this.name}" was busy`);
    return lease;
  }

  /**
   * Takes the lock if it is free now; null when it is busy.
   * @returns {Promise<Lease | null>}
   */
  tryAcquire() {
    const inner = this._native;
    return inner ? inner.acquire(0, null) : this._ready.then((ready) => ready.acquire(0, null));
  }

  /**
   * Releases the lease this Lock holds (NOT_HELD without one, LOCK_LOST if
   * it was lost). After a transient failure (CONNECTION) the Lock still
   * holds it: `await lock.release()` again.
   * @returns {Promise<void>}
   */
  release() {
    const inner = this._native;
    return inner ? inner.release() : this._ready.then((ready) => ready.release());
  }

  /**
   * Renews the held lease now.
   * @returns {Promise<void>}
   */
  renew() {
    const inner = this._native;
    return inner ? inner.renew() : this._ready.then((ready) => ready.renew());
  }

  /**
   * Calls `callback(event)` when a lease of this Lock (the current one or a
   * later one) is lost, once per lease, while this Lock lives. Returns a
   * function that removes the callback (as `offLost(callback)` does). The
   * registration keeps nothing alive (not the process, not this Lock, not
   * its client); an exception in the callback is an uncaught exception.
   * @param {(event: LostEvent) => void} callback
   * @returns {() => void} removes the callback
   */
  onLost(callback) {
    if (typeof callback !== "function") throw invalid("onLost needs a function");
    const id = this._lost.add(callback);
    const inner = this._native;
    if (inner) inner.onLost(id);
    else {
      this._ready.then(
        (ready) => {
          if (this._lost.entries.has(id)) ready.onLost(id);
        },
        () => {},
      );
    }
    return () => {
      this._removeListener(id);
    };
  }

  /**
   * Removes every registration of `callback` made with `onLost`; true if
   * there was one.
   * @param {(event: LostEvent) => void} callback
   * @returns {boolean}
   */
  offLost(callback) {
    let removed = false;
    for (const [id, entry] of [...this._lost.entries]) {
      if (entry.callback === callback) removed = this._removeListener(id) || removed;
    }
    return removed;
  }

  /**
   * @private
   * @param {number} id
   * @returns {boolean}
   */
  _removeListener(id) {
    if (!this._lost.remove(id)) return false;
    this._native?.offLost(id);
    return true;
  }

  /** The current lease's fencing token. @returns {bigint | null} */
  get fencingToken() {
    return this._native?.fencingToken ?? null;
  }

  /** True while this Lock holds a proven lease. @returns {boolean} */
  get isHeld() {
    return this._native?.isHeld ?? false;
  }

  /** True while an acquisition of this Lock is pending. @returns {boolean} */
  get isAcquiring() {
    return this._native?.isAcquiring ?? false;
  }

  /** Ms the current lease is still proven held (0 without one). @returns {number} */
  get timeToExpiration() {
    return this._native?.timeToExpiration ?? 0;
  }
}

/**
 * The distributed lock/unlock events of one name, as an async iterator.
 * @implements {AsyncIterableIterator<LockEvent>}
 */
class LockEvents {
  /** @param {Promise<any>} inner */
  constructor(inner) {
    /** @private */
    this._inner = inner;
    this._inner.catch(() => {});
  }

  /** @returns {Promise<IteratorResult<LockEvent, undefined>>} */
  async next() {
    const events = await this._inner;
    const event = await events.next();
    return event ? { value: event, done: false } : { value: undefined, done: true };
  }

  /**
   * Resolves once the stream sees every change: at once on memory:// and
   * MongoDB, on Consul after its blocking query's first read. Await it before
   * acting when the events of what you do next must all show.
   * @returns {Promise<void>}
   */
  async ready() {
    const events = await this._inner;
    await events.ready();
  }

  /** Ends the subscription. @returns {Promise<IteratorResult<LockEvent, undefined>>} */
  async return() {
    (await this._inner).close();
    return { value: undefined, done: true };
  }

  /** @returns {LockEvents} */
  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * @typedef {object} Registration
 * @property {string} name The registered name (without the namespace).
 * @property {string} value The value it is registered with.
 */

/**
 * @typedef {object} RegistryEvent
 * @property {string} name The name (without the namespace).
 * @property {boolean} registered True when registered; false when unregistered or expired.
 * @property {string} holder The registering lease's holder id.
 */

/**
 * The registrations and unregistrations of a namespace, as an async iterator.
 * @implements {AsyncIterableIterator<RegistryEvent>}
 */
class RegistryEvents {
  /**
   * @param {LockEvents} events
   * @param {string} namespace
   */
  constructor(events, namespace) {
    /** @private */
    this._events = events;
    /** @private */
    this._prefix = `${namespace}/`;
  }

  /** @returns {Promise<IteratorResult<RegistryEvent, undefined>>} */
  async next() {
    const next = await this._events.next();
    if (next.done) return { value: undefined, done: true };
    const event = next.value;
    return {
      value: {
        name: event.name.slice(this._prefix.length),
        registered: event.kind === "acquired",
        holder: event.holder,
      },
      done: false,
    };
  }

  /** Resolves once the stream sees every change (see `LockEvents.ready`). @returns {Promise<void>} */
  async ready() {
    await this._events.ready();
  }

  /** Ends the subscription. @returns {Promise<IteratorResult<RegistryEvent, undefined>>} */
  async return() {
    await this._events.return();
    return { value: undefined, done: true };
  }

  /** @returns {RegistryEvents} */
  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * Names registered in one namespace (`client.registry("services")`), by any
 * client of the backend. A registration is a lease this client keeps
 * renewing until `unregister()` or the end of the process.
 */
class Registry {
  /**
   * @param {Promise<any>} inner
   * @param {string} namespace
   */
  constructor(inner, namespace) {
    /** @private */
    this._inner = inner;
    this._inner.catch(() => {});
    /** The namespace. @type {string} */
    this.namespace = namespace;
  }

  /**
   * Registers `name` with `value`; rejects with CONFLICT if it is taken.
   * @param {string} name
   * @param {string} value
   * @returns {Promise<void>}
   */
  async register(name, value) {
    const problem = stringProblem(name, "a name") ?? stringProblem(value, "a value");
    if (problem) throw problem;
    const inner = await this._inner;
    return inner.register(name, value);
  }

  /**
   * The value `name` is registered with, or null.
   * @param {string} name
   * @returns {Promise<string | null>}
   */
  async whereis(name) {
    const problem = stringProblem(name, "a name");
    if (problem) throw problem;
    const inner = await this._inner;
    return inner.whereis(name);
  }

  /**
   * Gives up this client's registration of `name`; NOT_HELD if it has none.
   * @param {string} name
   * @returns {Promise<void>}
   */
  async unregister(name) {
    const problem = stringProblem(name, "a name");
    if (problem) throw problem;
    const inner = await this._inner;
    return inner.unregister(name);
  }

  /**
   * Every registered name of the namespace with its value, sorted by name.
   * @returns {Promise<Registration[]>}
   */
  async list() {
    const inner = await this._inner;
    return inner.list();
  }

  /**
   * Registrations and unregistrations by any client, from now on (backends
   * with an event stream: memory://, Consul, mongodb://).
   * @returns {RegistryEvents}
   */
  events() {
    const events = new LockEvents(this._inner.then((inner) => inner.events()));
    return new RegistryEvents(events, this.namespace);
  }
}

/** A backend connection, chosen by URL: memory://, consul://host:port, mongodb://…. */
class Client {
  /**
   * Connects in the background; the first call waits for it (and rejects
   * with its error if connecting failed).
   * @param {string} [url]
   * @param {ClientOptions} [options]
   */
  constructor(url = "memory://", options = {}) {
    const problem =
      stringProblem(url, "a URL") ??
      optionsProblem(options, { token: "string", defaultTtl: "number", defaultValue: "string" }, "client options");
    /** @internal @type {Promise<any>} */
    this._ready = problem ? Promise.reject(problem) : native.connect(url, options ?? {});
    this._ready.catch(() => {});
  }

  /**
   * Waits until connected (rejects with the connection error).
   * @returns {Promise<this>}
   */
  async connect() {
    await this._ready;
    return this;
  }

  /**
   * A handle for the lock `name`.
   * @param {string} name
   * @param {LockOptions} [options]
   * @returns {Lock}
   */
  lock(name, options) {
    return new Lock(this, name, options);
  }

  /**
   * The backend's URL scheme ("memory", "consul", "mongodb", "ldlm").
   * @returns {Promise<string>}
   */
  async scheme() {
    return (await this._ready).scheme;
  }

  /**
   * What the backend can do, as the core declares it: gate behaviour on
   * this rather than on the backend's name.
   * @returns {Promise<Capabilities>}
   */
  async capabilities() {
    return (await this._ready).capabilities;
  }

  /**
   * The distributed lock/unlock events of `name`, from now on (backends
   * with an event stream: memory://, Consul, mongodb://).
   * @param {string} name
   * @returns {LockEvents}
   */
  watch(name) {
    const problem = stringProblem(name, "a lock name");
    return new LockEvents(problem ? Promise.reject(problem) : this._ready.then((inner) => inner.watch(name)));
  }

  /**
   * The name registry `namespace` (a valid lock name).
   * @param {string} namespace
   * @returns {Registry}
   */
  registry(namespace) {
    const problem = stringProblem(namespace, "a namespace");
    return new Registry(problem ? Promise.reject(problem) : this._ready.then((inner) => inner.registry(namespace)), namespace);
  }
}

module.exports = { Client, Lock, Lease, LockEvents, Registry, RegistryEvents, PolylockError };

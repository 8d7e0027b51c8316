// polylock for Node.js: distributed locks and counting semaphores with
// fencing tokens over Consul, MongoDB and memory://, from one Rust core.
//
// Every backend call returns a Promise and runs on polylock's own threads;
// nothing blocks the event loop. index.d.ts is generated from the JSDoc
// here (npm run types) and checked in CI.
"use strict";

const native = require("./polylock.node");

/** Stable error codes by the core's error kind. */
const CODES = {
  timeout: "LOCK_TIMEOUT",
  lost: "LOCK_LOST",
  not_held: "NOT_HELD",
  limit_mismatch: "LIMIT_MISMATCH",
  conflict: "CONFLICT",
  connection: "CONNECTION",
  auth: "AUTH",
  invalid_argument: "INVALID_ARGUMENT",
  backend: "BACKEND",
  usage: "USAGE",
  aborted: "ABORTED",
};

/**
 * Every polylock failure. `code` is stable: LOCK_TIMEOUT, LOCK_LOST,
 * NOT_HELD, LIMIT_MISMATCH, CONFLICT, CONNECTION, AUTH, INVALID_ARGUMENT,
 * BACKEND, USAGE, ABORTED (a wait ended by its AbortSignal; `name` is
 * "AbortError" then).
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
 * Rethrows a native error as a PolylockError.
 * @param {unknown} error
 * @returns {never}
 */
function rethrow(error) {
  if (error instanceof Error && !(error instanceof PolylockError)) {
    const match = /^([a-z_]+): ([\s\S]*)$/.exec(error.message);
    if (match && CODES[match[1]]) throw new PolylockError(CODES[match[1]], match[2]);
    if (/Failed to convert|is not a|Expect type/i.test(error.message)) {
      throw new PolylockError("INVALID_ARGUMENT", error.message);
    }
  }
  throw error;
}

/**
 * Calls `f`, mapping native errors (sync or async) to PolylockError.
 * @template T
 * @param {() => T} f
 * @returns {T}
 */
function mapped(f) {
  try {
    const result = f();
    if (result && typeof (/** @type {any} */ (result)).then === "function") {
      return /** @type {any} */ (result).then(undefined, rethrow);
    }
    return result;
  } catch (error) {
    return rethrow(error);
  }
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
 */

/**
 * @typedef {object} AcquireOptions
 * @property {number} [timeout] Longest wait in ms (default: as long as it takes).
 * @property {AbortSignal} [signal] Aborting it ends the wait with an ABORTED error.
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

/** A held lease. `await using lease = await lock.acquire()` releases it. */
class Lease {
  /** @param {any} inner */
  constructor(inner) {
    /** @private */
    this._inner = inner;
  }

  /** The lock's name. @returns {string} */
  get name() {
    return this._inner.name;
  }

  /** The backend's id of this lease (Consul session id, …). @returns {string} */
  get holder() {
    return this._inner.holder;
  }

  /** Strictly increasing per name; null where the backend has none. @returns {bigint | null} */
  get fencingToken() {
    return this._inner.fencingToken ?? null;
  }

  /** The granted TTL in ms. @returns {number} */
  get ttl() {
    return this._inner.ttl;
  }

  /** True while the lease is held and proven. @returns {boolean} */
  get isHeld() {
    return this._inner.isHeld;
  }

  /** Ms the lease is still proven held (0 once it is not). @returns {number} */
  get timeToExpiration() {
    return this._inner.timeToExpiration;
  }

  /**
   * Releases the lease (NOT_HELD when released already, LOCK_LOST when lost).
   * @returns {Promise<void>}
   */
  release() {
    return mapped(() => this._inner.release());
  }

  /**
   * Renews the lease now (polylock also renews it on its own).
   * @returns {Promise<void>}
   */
  renew() {
    return mapped(() => this._inner.renew());
  }

  /**
   * Calls `callback(event)` once if the lease is lost. The callback never
   * keeps the process alive; an exception in it is an uncaught exception.
   * @param {(event: LostEvent) => void} callback
   * @returns {void}
   */
  onLost(callback) {
    mapped(() => this._inner.onLost(callback));
  }

  /**
   * Releases unless released or lost already.
   * @returns {Promise<void>}
   */
  async [Symbol.asyncDispose]() {
    if (this._inner.isHeld) {
      try {
        await this.release();
      } catch (error) {
        if (!(error instanceof PolylockError) || (error.code !== "NOT_HELD" && error.code !== "LOCK_LOST")) throw error;
      }
    }
  }
}

/** A lock handle; holds at most one lease at a time. */
class Lock {
  /**
   * @param {Client} client
   * @param {string} name
   * @param {LockOptions} [options]
   */
  constructor(client, name, options) {
    /** @private */
    this._native = client._ready.then((inner) => mapped(() => inner.lock(name, options ?? {})));
    this._native.catch(() => {});
    /** @private @type {Lease | null} */
    this._lease = null;
    /** @private @type {boolean} */
    this._acquiring = false;
    /** @private @type {Array<(event: LostEvent) => void>} */
    this._callbacks = [];
    /** The lock's name. @type {string} */
    this.name = name;
  }

  /**
   * Takes the lock, waiting at most `timeout` ms (default: as long as it
   * takes). Rejects with LOCK_TIMEOUT when the time runs out, ABORTED when
   * `signal` aborts (the wait is cancelled; a lease granted meanwhile is
   * released), USAGE when this Lock already holds or is acquiring a lease.
   * @param {AcquireOptions} [options]
   * @returns {Promise<Lease>}
   */
  async acquire(options = {}) {
    const { timeout, signal } = options;
    if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0))) {
      if (timeout !== 0) throw new PolylockError("INVALID_ARGUMENT", `timeout must be a positive number of ms, not ${timeout}`);
    }
    const lease = await this._take(timeout === undefined ? null : timeout, signal);
    if (lease === null) throw new PolylockError("LOCK_TIMEOUT", `lock "${this.name}" was busy`);
    return lease;
  }

  /**
   * Takes the lock if it is free now; null when it is busy.
   * @returns {Promise<Lease | null>}
   */
  tryAcquire() {
    return this._take(0, undefined);
  }

  /**
   * @private
   * @param {number | null} timeout
   * @param {AbortSignal | undefined} signal
   * @returns {Promise<Lease | null>}
   */
  async _take(timeout, signal) {
    if (this._acquiring || (this._lease && this._lease.isHeld)) {
      throw new PolylockError(
        "USAGE",
        `this Lock for "${this.name}" already holds or is acquiring a lease; release it, or make another Lock`,
      );
    }
    if (signal?.aborted) throw new PolylockError("ABORTED", "the wait was aborted by its AbortSignal");
    this._acquiring = true;
    const token = new native.CancelToken();
    const onAbort = () => token.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const lock = await this._native;
      const inner = await mapped(() => lock.acquire(timeout, token));
      if (!inner) return null;
      const lease = new Lease(inner);
      for (const callback of this._callbacks) lease.onLost(callback);
      this._lease = lease;
      return lease;
    } finally {
      this._acquiring = false;
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Releases the lease this Lock holds (NOT_HELD without one).
   * @returns {Promise<void>}
   */
  async release() {
    const lease = this._lease;
    if (!lease) throw new PolylockError("NOT_HELD", `this Lock for "${this.name}" holds no lease`);
    this._lease = null;
    await lease.release();
  }

  /**
   * Renews the held lease now.
   * @returns {Promise<void>}
   */
  async renew() {
    if (!this._lease) throw new PolylockError("NOT_HELD", `this Lock for "${this.name}" holds no lease`);
    await this._lease.renew();
  }

  /**
   * Calls `callback(event)` when a lease of this Lock (the current one or a
   * later one) is lost, once per lease.
   * @param {(event: LostEvent) => void} callback
   * @returns {void}
   */
  onLost(callback) {
    this._callbacks.push(callback);
    this._lease?.onLost(callback);
  }

  /** The current lease's fencing token. @returns {bigint | null} */
  get fencingToken() {
    return this._lease?.fencingToken ?? null;
  }

  /** True while this Lock holds a proven lease. @returns {boolean} */
  get isHeld() {
    return this._lease?.isHeld ?? false;
  }

  /** Ms the current lease is still proven held (0 without one). @returns {number} */
  get timeToExpiration() {
    return this._lease?.timeToExpiration ?? 0;
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
    const event = await mapped(() => events.next());
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
    await mapped(() => events.ready());
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
    const inner = await this._inner;
    return mapped(() => inner.register(name, value));
  }

  /**
   * The value `name` is registered with, or null.
   * @param {string} name
   * @returns {Promise<string | null>}
   */
  async whereis(name) {
    const inner = await this._inner;
    return mapped(() => inner.whereis(name));
  }

  /**
   * Gives up this client's registration of `name`; NOT_HELD if it has none.
   * @param {string} name
   * @returns {Promise<void>}
   */
  async unregister(name) {
    const inner = await this._inner;
    return mapped(() => inner.unregister(name));
  }

  /**
   * Every registered name of the namespace with its value, sorted by name.
   * @returns {Promise<Registration[]>}
   */
  async list() {
    const inner = await this._inner;
    return mapped(() => inner.list());
  }

  /**
   * Registrations and unregistrations by any client, from now on (backends
   * with an event stream: memory://, Consul, mongodb://).
   * @returns {RegistryEvents}
   */
  events() {
    const events = new LockEvents(this._inner.then((inner) => mapped(() => inner.events())));
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
    /** @internal */
    this._ready = mapped(() => native.connect(url, options));
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
    return new LockEvents(this._ready.then((inner) => mapped(() => inner.watch(name))));
  }

  /**
   * The name registry `namespace` (a valid lock name).
   * @param {string} namespace
   * @returns {Registry}
   */
  registry(namespace) {
    return new Registry(
      this._ready.then((inner) => mapped(() => inner.registry(namespace))),
      namespace,
    );
  }
}

module.exports = { Client, Lock, Lease, LockEvents, Registry, RegistryEvents, PolylockError };

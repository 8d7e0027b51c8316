export type ClientOptions = {
    /**
     * The backend's ACL token (else the URL or CONSUL_HTTP_TOKEN).
     */
    token?: string;
    /**
     * TTL in ms of locks that give none (15000).
     */
    defaultTtl?: number;
    /**
     * Holder value stored with leases (host name and pid).
     */
    defaultValue?: string;
};
/**
 * What a backend can do.
 */
export type Capabilities = {
    /**
     * Leases carry fencing tokens that strictly increase per name.
     */
    fencing: boolean;
    /**
     * A lost lease is noticed before the next renewal.
     */
    lossWatch: boolean;
    /**
     * Waits are woken by the server, not by polling.
     */
    changeNotifications: boolean;
    /**
     * Limits above 1 (counting semaphores) work.
     */
    semaphores: boolean;
    /**
     * One renewal keeps many leases (a Consul session).
     */
    sharedRenewal: boolean;
    /**
     * `watch` streams every client's acquisitions and releases.
     */
    eventStream: boolean;
    /**
     * Operator views and the registry's look-ups work.
     */
    inspection: boolean;
    /**
     * The server waits for the lock on the client's behalf (LDLM).
     */
    serverWait: boolean;
    /**
     * A lock nobody holds takes a new limit at once.
     */
    idleLimitResets: boolean;
    /**
     * A lease outlives the connection that took it.
     */
    outlivesConnection: boolean;
};
export type LockOptions = {
    /**
     * Lease TTL in ms; renewed every third of it until released.
     */
    ttl?: number;
    /**
     * 1: mutex (default); N: counting semaphore.
     */
    limit?: number;
    /**
     * Holder value stored with the lease.
     */
    value?: string;
    /**
     * false: the caller renews (`renew()` within each TTL, or the lease
     * is released and reported lost); true (default): polylock renews.
     */
    autoRenew?: boolean;
};
export type AcquireOptions = {
    /**
     * Longest wait in ms (default: as long as it takes; 0: no wait).
     */
    timeout?: number;
    /**
     * Aborting it ends the wait with an ABORTED error.
     */
    signal?: AbortSignal;
    /**
     * Called once (on the JS thread, before
     * the Promise settles) when the wait parked because the lock was busy: for
     * tests and tools that act exactly then.
     */
    onWaitStarted?: () => void;
};
export type LostEvent = {
    /**
     * The lock's name.
     */
    name: string;
    /**
     * The backend's id of the lost lease.
     */
    holder: string;
    /**
     * The lost lease's fencing token.
     */
    fencingToken: bigint | null | undefined;
    /**
     * Why the lease was lost.
     */
    reason: string;
};
export type LockEvent = {
    /**
     * What happened.
     */
    kind: "acquired" | "released" | "expired" | "lost";
    /**
     * The lock's name.
     */
    name: string;
    /**
     * The holder the event is about.
     */
    holder: string;
    /**
     * Its fencing token, if any.
     */
    fencingToken: bigint | null | undefined;
};
export type Registration = {
    /**
     * The registered name (without the namespace).
     */
    name: string;
    /**
     * The value it is registered with.
     */
    value: string;
};
export type RegistryEvent = {
    /**
     * The name (without the namespace).
     */
    name: string;
    /**
     * True when registered; false when unregistered or expired.
     */
    registered: boolean;
    /**
     * The registering lease's holder id.
     */
    holder: string;
};
/** A backend connection, chosen by URL: memory://, consul://host:port, mongodb://…. */
export class Client {
    /**
     * Connects in the background; the first call waits for it (and rejects
     * with its error if connecting failed).
     * @param {string} [url]
     * @param {ClientOptions} [options]
     */
    constructor(url?: string, options?: ClientOptions);
    /** @internal @type {Promise<any>} */
    _ready: Promise<any>;
    /**
     * Waits until connected (rejects with the connection error).
     * @returns {Promise<this>}
     */
    connect(): Promise<this>;
    /**
     * A handle for the lock `name`.
     * @param {string} name
     * @param {LockOptions} [options]
     * @returns {Lock}
     */
    lock(name: string, options?: LockOptions): Lock;
    /**
     * The backend's URL scheme ("memory", "consul", "mongodb", "ldlm").
     * @returns {Promise<string>}
     */
    scheme(): Promise<string>;
    /**
     * What the backend can do, as the core declares it: gate behaviour on
     * this rather than on the backend's name.
     * @returns {Promise<Capabilities>}
     */
    capabilities(): Promise<Capabilities>;
    /**
     * The distributed lock/unlock events of `name`, from now on (backends
     * with an event stream: memory://, Consul, mongodb://).
     * @param {string} name
     * @returns {LockEvents}
     */
    watch(name: string): LockEvents;
    /**
     * The name registry `namespace` (a valid lock name).
     * @param {string} namespace
     * @returns {Registry}
     */
    registry(namespace: string): Registry;
}
/**
 * A lock handle; holds at most one lease at a time (the core's LeaseSlot).
 * A Lock acquires again once its lease was released or lost.
 */
export class Lock {
    /**
     * @param {Client} client
     * @param {string} name
     * @param {LockOptions} [options]
     */
    constructor(client: Client, name: string, options?: LockOptions);
    /** @private @type {any} */
    private _native;
    /** @private @type {Promise<any>} */
    private _ready;
    /** @private */
    private _lost;
    /** The lock's name. @type {string} */
    name: string;
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
    acquire(options?: AcquireOptions): Promise<Lease>;
    /**
     * Takes the lock if it is free now; null when it is busy.
     * @returns {Promise<Lease | null>}
     */
    tryAcquire(): Promise<Lease | null>;
    /**
     * Releases the lease this Lock holds (NOT_HELD without one, LOCK_LOST if
     * it was lost). After a transient failure (CONNECTION) the Lock still
     * holds it: `await lock.release()` again.
     * @returns {Promise<void>}
     */
    release(): Promise<void>;
    /**
     * Renews the held lease now.
     * @returns {Promise<void>}
     */
    renew(): Promise<void>;
    /**
     * Calls `callback(event)` when a lease of this Lock (the current one or a
     * later one) is lost, once per lease, while this Lock lives. Returns a
     * function that removes the callback (as `offLost(callback)` does). The
     * registration keeps nothing alive (not the process, not this Lock, not
     * its client); an exception in the callback is an uncaught exception.
     * @param {(event: LostEvent) => void} callback
     * @returns {() => void} removes the callback
     */
    onLost(callback: (event: LostEvent) => void): () => void;
    /**
     * Removes every registration of `callback` made with `onLost`; true if
     * there was one.
     * @param {(event: LostEvent) => void} callback
     * @returns {boolean}
     */
    offLost(callback: (event: LostEvent) => void): boolean;
    /**
     * @private
     * @param {number} id
     * @returns {boolean}
     */
    private _removeListener;
    /** The current lease's fencing token. @returns {bigint | null} */
    get fencingToken(): bigint;
    /** True while this Lock holds a proven lease. @returns {boolean} */
    get isHeld(): boolean;
    /** True while an acquisition of this Lock is pending. @returns {boolean} */
    get isAcquiring(): boolean;
    /** Ms the current lease is still proven held (0 without one). @returns {number} */
    get timeToExpiration(): number;
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
export class Lease {
    /** @private @type {LostListeners | null} */
    private _lost;
    /** The lock's name. @returns {string} */
    get name(): string;
    /** The backend's id of this lease (Consul session id, …). @returns {string} */
    get holder(): string;
    /** Strictly increasing per name; null where the backend has none. @returns {bigint | null} */
    get fencingToken(): bigint;
    /** The granted TTL in ms. @returns {number} */
    get ttl(): number;
    /** True while the lease is held and proven. @returns {boolean} */
    get isHeld(): boolean;
    /** Ms the lease is still proven held (0 once it is not). @returns {number} */
    get timeToExpiration(): number;
    /**
     * Releases the lease (NOT_HELD when released already, LOCK_LOST when
     * lost). After a transient failure (CONNECTION) it is still held, and
     * the release can be retried.
     * @returns {Promise<void>}
     */
    release(): Promise<void>;
    /**
     * Renews the lease now (polylock also renews it on its own).
     * @returns {Promise<void>}
     */
    renew(): Promise<void>;
    /**
     * Calls `callback(event)` once if this lease is lost (at once if it is
     * lost already), while this Lease object lives. Returns a function that
     * removes the callback. The callback never keeps the process (or this
     * object) alive; an exception in it is an uncaught exception.
     * @param {(event: LostEvent) => void} callback
     * @returns {() => void} removes the callback
     */
    onLost(callback: (event: LostEvent) => void): () => void;
    /**
     * Releases unless released or lost already.
     * @returns {Promise<void>}
     */
    [Symbol.asyncDispose](): Promise<void>;
}
/**
 * The distributed lock/unlock events of one name, as an async iterator.
 * @implements {AsyncIterableIterator<LockEvent>}
 */
export class LockEvents implements AsyncIterableIterator<LockEvent> {
    /** @param {Promise<any>} inner */
    constructor(inner: Promise<any>);
    /** @private */
    private _inner;
    /** @returns {Promise<IteratorResult<LockEvent, undefined>>} */
    next(): Promise<IteratorResult<LockEvent, undefined>>;
    /**
     * Resolves once the stream sees every change: at once on memory:// and
     * MongoDB, on Consul after its blocking query's first read. Await it before
     * acting when the events of what you do next must all show.
     * @returns {Promise<void>}
     */
    ready(): Promise<void>;
    /** Ends the subscription. @returns {Promise<IteratorResult<LockEvent, undefined>>} */
    return(): Promise<IteratorResult<LockEvent, undefined>>;
    /** @returns {LockEvents} */
    [Symbol.asyncIterator](): LockEvents;
}
/**
 * Names registered in one namespace (`client.registry("services")`), by any
 * client of the backend. A registration is a lease this client keeps
 * renewing until `unregister()` or the end of the process.
 */
export class Registry {
    /**
     * @param {Promise<any>} inner
     * @param {string} namespace
     */
    constructor(inner: Promise<any>, namespace: string);
    /** @private */
    private _inner;
    /** The namespace. @type {string} */
    namespace: string;
    /**
     * Registers `name` with `value`; rejects with CONFLICT if it is taken.
     * @param {string} name
     * @param {string} value
     * @returns {Promise<void>}
     */
    register(name: string, value: string): Promise<void>;
    /**
     * The value `name` is registered with, or null.
     * @param {string} name
     * @returns {Promise<string | null>}
     */
    whereis(name: string): Promise<string | null>;
    /**
     * Gives up this client's registration of `name`; NOT_HELD if it has none.
     * @param {string} name
     * @returns {Promise<void>}
     */
    unregister(name: string): Promise<void>;
    /**
     * Every registered name of the namespace with its value, sorted by name.
     * @returns {Promise<Registration[]>}
     */
    list(): Promise<Registration[]>;
    /**
     * Registrations and unregistrations by any client, from now on (backends
     * with an event stream: memory://, Consul, mongodb://).
     * @returns {RegistryEvents}
     */
    events(): RegistryEvents;
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
export class RegistryEvents implements AsyncIterableIterator<RegistryEvent> {
    /**
     * @param {LockEvents} events
     * @param {string} namespace
     */
    constructor(events: LockEvents, namespace: string);
    /** @private */
    private _events;
    /** @private */
    private _prefix;
    /** @returns {Promise<IteratorResult<RegistryEvent, undefined>>} */
    next(): Promise<IteratorResult<RegistryEvent, undefined>>;
    /** Resolves once the stream sees every change (see `LockEvents.ready`). @returns {Promise<void>} */
    ready(): Promise<void>;
    /** Ends the subscription. @returns {Promise<IteratorResult<RegistryEvent, undefined>>} */
    return(): Promise<IteratorResult<RegistryEvent, undefined>>;
    /** @returns {RegistryEvents} */
    [Symbol.asyncIterator](): RegistryEvents;
}
/**
 * Every polylock failure. `code` is stable: LOCK_TIMEOUT, LOCK_LOST,
 * NOT_HELD, LIMIT_MISMATCH, CONFLICT, CONNECTION, AUTH, INVALID_ARGUMENT,
 * BACKEND, USAGE, ABORTED (a wait ended by its AbortSignal; `name` is
 * "AbortError" then). The addon makes these itself, code included.
 */
export class PolylockError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     */
    constructor(code: string, message: string);
    /** @type {string} */
    code: string;
}

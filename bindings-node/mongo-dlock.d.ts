// Typings of polylock/mongo-dlock (written by hand; mongo-dlock.js is the
// implementation). `const MDL = require("polylock/mongo-dlock")` stands in
// for `require("mongo-dlock")`.
import { EventEmitter } from "node:events";
import { Capabilities, Client, PolylockError as PolylockErrorClass } from "./index";

export = MDL;

/**
 * Connects to the backend and calls `cb(null, Locks)`, or `cb(err)` with a
 * PolylockError: INVALID_ARGUMENT for a bad option (a wrong type, an
 * exp_delta out of range, an unknown URL scheme), CONNECTION, AUTH, ….
 * Throws a PolylockError (INVALID_ARGUMENT) when `cb` is not a function.
 */
declare function MDL(opts: MDL.Options | undefined, cb: (err: Error | null, Locks?: MDL.MongoDLock) => void): void;

declare namespace MDL {
  /** The options of a DLock; those MDL takes are the defaults of its DLocks. */
  interface LockOptions {
    /**
     * The lease TTL in ms (default 5000): unless renewed, a lock is held
     * this long after it was taken. polylock takes 1000 to 86400000 (24 h);
     * anything else is an INVALID_ARGUMENT error, never clamped.
     */
    exp_delta?: number;
    /**
     * Renew the lease automatically (polylock renews every third of
     * exp_delta). On unless `false`, as in mongo-dlock, where an undefined
     * autorefresh refreshes. With `false` the lease ends exp_delta after it
     * was taken (or after the last `refresh`): polylock then reports it
     * lost (the `lost` event) and frees the lock.
     */
    autorefresh?: boolean;
    /**
     * Ms between attempts of a wait_lock (default 5000), on a backend
     * without change notifications (Capabilities.changeNotifications false)
     * only: it bounds the time between attempts there. Every backend
     * polylock has today (memory://, consul://, mongodb://, ldlm://) wakes
     * waiters when the lock is freed, so the period is not used.
     */
    wait_lock_period?: number;
  }

  /** MDL's options. */
  interface Options extends LockOptions {
    /**
     * A mongodb:// (or mongodb+srv://) URL as mongo-dlock takes it (default
     * "mongodb://localhost:27017"): its path is the authentication database
     * only (it becomes `authSource` when the URL has credentials and no
     * authSource). Any other polylock URL works too (memory://NAME,
     * consul://HOST:PORT, ldlm://HOST:PORT, …), so the same code runs on
     * every backend.
     */
    url?: string;
    /**
     * The MongoDB database of the locks (default "dlocks"). On other
     * backends, db and coll (when either is given) prefix lock names:
     * `<db>/<coll>/<id>`.
     */
    db?: string;
    /**
     * The MongoDB collection of the locks (default "dlocks"; polylock's
     * `collection` URL option). polylock keeps its own documents there
     * (ids `<id>/<slot>/<generation>`), and its event stream and renewal
     * sessions in `<coll>_events` and `<coll>_sessions`. mongo-dlock and
     * polylock processes do not exclude each other: move every process
     * of a lock id at once.
     */
    coll?: string;
    /**
     * Accepted and not used: polylock's event stream is its own (the
     * capped collection `<coll>_events` next to the locks on MongoDB,
     * blocking queries on Consul), always the one of the lock collection.
     */
    notif_url?: string;
    /** Accepted and not used (see notif_url). */
    notif_channel?: string;
    /**
     * Accepted and not used: polylock judges expiry from each lease's own
     * deadline in server time, and removes old documents itself, so no TTL
     * index (nor a grace period on it) is involved.
     */
    grace?: number;
  }

  /** The options of `Locks.dlock`. */
  interface DLockOptions extends LockOptions {
    /** The lock's id: DLocks of one id are one lock. Default: a new uuid v4. */
    id?: string;
  }

  /** The payload of the `lock` and `unlock` events. */
  interface LockEvent {
    /** The DLock's id. */
    id: string;
    /** True for `lock`, false for `unlock`. */
    locked: boolean;
    /**
     * polylock's event kind: "acquired" (`lock`); "released" or "expired"
     * (`unlock`; expired: the holder's lease ran out and another took it).
     */
    kind: "acquired" | "released" | "expired";
    /** The backend's id of the holder the event is about. */
    holder: string;
    /** That holder's fencing token, where the backend has them. */
    fencing_token: bigint | null;
  }

  /** The payload of the `lost` event. */
  interface LostEvent {
    /** The DLock's id. */
    id: string;
    /** The backend's id of the lost lease. */
    holder: string;
    /** Its fencing token, where the backend has them. */
    fencing_token: bigint | null;
    /** Why it was lost (not renewed in time, taken away, …). */
    reason: string;
  }

  /** The DLock factory MDL hands to its callback. */
  class MongoDLock {
    private constructor();
    /** The polylock Client underneath, for polylock's own API. */
    readonly client: Client;
    /** What the backend can do. */
    readonly capabilities: Capabilities;
    /**
     * True when `lock` / `unlock` events reach DLocks in every process.
     * False where the backend has no lock event stream (ldlm://): then
     * DLocks see only the acquisitions and releases of this factory's DLocks.
     */
    readonly distributed_events: boolean;
    /**
     * A DLock: `dlock("some-task")` or `dlock({ id, exp_delta, autorefresh,
     * wait_lock_period })` (what is not given comes from MDL's options).
     * Throws a PolylockError: INVALID_ARGUMENT for bad options, USAGE after
     * close. A lock id polylock does not take (letters, digits and
     * -_.:@=+/ only) fails the DLock's first call with INVALID_ARGUMENT.
     */
    dlock(opts?: string | DLockOptions): DLock;
    /**
     * Closes the factory. It unlocks nothing (as in mongo-dlock): each held
     * lock stops being renewed and the backend frees it when its exp_delta
     * runs out. Pending wait_locks end with ABORTED; later calls of the
     * factory or its DLocks fail with USAGE. A second close does nothing.
     */
    close(cb?: (err: Error | null) => void): void;
  }

  /**
   * A distributed lock (an EventEmitter: `lock`, `unlock`, `lost`). The
   * DLocks of one id in a factory share one subscription to the id's
   * events, made when the first `lock` / `unlock` listener is added (or
   * `subscribed` is called) and ended when they are all collected or the
   * factory is closed.
   */
  class DLock extends EventEmitter {
    private constructor();
    /** The lock's id. */
    id(): string;
    /** True while this DLock holds the lock. */
    readonly locked: boolean;
    /** The backend's id of the lease this DLock holds (an event's `holder`); null without one. */
    readonly holder: string | null;
    /** The fencing token of the lease this DLock holds; null without one. */
    readonly fencing_token: bigint | null;
    /**
     * Tries once: res true if this DLock took the lock, false if it is
     * held elsewhere (or by this DLock already, or it is waiting for it).
     */
    lock(cb: (err: Error | null, res?: boolean) => void): void;
    /**
     * Waits until this DLock holds the lock (res true); res false at once
     * if it holds it already or waits already. The wait is woken by the
     * backend when the lock is freed anywhere. ABORTED if the factory is
     * closed meanwhile.
     */
    wait_lock(cb: (err: Error | null, res?: boolean) => void): void;
    /**
     * Releases the lock: res true, or false (no error) if this DLock did
     * not hold it. After a CONNECTION error the lock is still held: retry.
     */
    unlock(cb?: (err: Error | null, res?: boolean) => void): void;
    /** Renews the lease now (polylock's extra): res false if not held. */
    refresh(cb: (err: Error | null, res?: boolean) => void): void;
    /**
     * Subscribes (if no `lock` / `unlock` listener did yet) and calls
     * `cb(null)` once this DLock sees every lock/unlock event of its id
     * (lock and wait_lock wait for this themselves).
     */
    subscribed(cb: (err: Error | null) => void): void;

    on(event: "lock" | "unlock", listener: (event: LockEvent) => void): this;
    on(event: "lost", listener: (event: LostEvent) => void): this;
    once(event: "lock" | "unlock", listener: (event: LockEvent) => void): this;
    once(event: "lost", listener: (event: LostEvent) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  /**
   * The polylock URL MDL connects to for `opts` (url, db, coll): for the
   * polylock CLI or polylock's own `new Client(url)`, where a DLock of id
   * X is the lock X on MongoDB (elsewhere `<db>/<coll>/X` when db or coll
   * is given). Throws a PolylockError (INVALID_ARGUMENT) for bad options.
   */
  function polylock_url(opts?: Options): string;
  /** polylock's error class (`err.code`: INVALID_ARGUMENT, USAGE, ABORTED, …). */
  const PolylockError: typeof PolylockErrorClass;
  /** MDL itself, for `const { MDL } = require("polylock/mongo-dlock")`. */
  const MDL: typeof import("./mongo-dlock");
}

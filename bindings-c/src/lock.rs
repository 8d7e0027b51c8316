//! `polylock_lock`: one lock name with its options, holding at most one
//! lease at a time, and the calls that acquire, cancel, renew and release
//! it. The handle is the core's [`LeaseSlot`] (the one-lease state machine
//! every binding shares); this module adds what is C's own: statuses, the
//! wait-started hook, and the lost-callback registration, which hangs off
//! the slot as one slot listener per handle (see `lost.rs`).
//!
//! No lock of this crate is held across a blocking or backend call: the
//! slot takes its own mutex only to read or change its state.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use polylock_core::{AcquireHooks, LeaseSlot, ListenerId, LockOptions, Wait};

use crate::call::{self, Failure};
use crate::client::{polylock_client, CLIENTS};
use crate::handles::Registry;
use crate::lost::{polylock_lost_callback, polylock_user_data_free, CallbackSlot};
use crate::status::polylock_status;

/// A lock handle: a name, a limit and a TTL, holding at most one lease at a
/// time. Opaque; create with `polylock_lock_new`.
pub struct polylock_lock {
    _opaque: [u8; 0],
}

/// Runs once when an acquisition started by `polylock_acquire_with` starts
/// waiting because the lock is busy, on the thread blocked in that call
/// (which runs the acquisition inside polylock's runtime context). It must
/// return quickly and must not block; polylock's blocking calls are refused
/// there (`POLYLOCK_USAGE`), `polylock_acquire_cancel` is allowed.
pub type polylock_wait_started_callback = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A wait-started callback with its `user_data`.
struct WaitStarted {
    callback: unsafe extern "C" fn(user_data: *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the header's contract makes `user_data` usable from another
// thread during the acquire call; polylock never touches what it
// points to.
unsafe impl Send for WaitStarted {}

impl WaitStarted {
    fn call(self) {
        // SAFETY: a valid function with its user_data, per the contract; the
        // acquire call it belongs to has not returned yet (the hook runs
        // inside the acquisition, before its outcome is reported).
        unsafe { (self.callback)(self.user_data) }
    }
}

/// What a lock handle holds.
struct LockHandle {
    slot: LeaseSlot,
    /// The C callback registration.
    lost: Arc<CallbackSlot>,
    /// The slot listener that forwards losses to `lost`: registered once,
    /// by the first `polylock_on_lost`.
    listener: OnceLock<ListenerId>,
}

impl LockHandle {
    /// Acquires as `wait` allows, blocking this thread; true if a lease was
    /// taken.
    fn acquire(&self, wait: Wait, wait_started: Option<WaitStarted>) -> Result<bool, Failure> {
        let hooks = AcquireHooks {
            wait_started: wait_started
                .map(|hook| Box::new(move || hook.call()) as Box<dyn FnOnce() + Send>),
        };
        Ok(self.slot.acquire_blocking_with(wait, hooks)?.is_some())
    }

    /// Forwards the slot's losses to the callback registration, once.
    fn listen(&self) {
        self.listener.get_or_init(|| {
            let lost = self.lost.clone();
            self.slot.on_lost(Arc::new(move |event| {
                lost.fire(event);
            }))
        });
    }
}

fn not_held() -> Failure {
    Failure::new(
        polylock_status::POLYLOCK_NOT_HELD,
        "this lock handle holds no lease (never acquired, or released)",
    )
}

static LOCKS: Registry<LockHandle> = Registry::new("lock handle");

/// Creates a handle for the lock `name` on `client` and writes it to `*out`.
///
/// - `name`: 1–256 characters of `A-Z a-z 0-9 - _ . : @ = + /`.
/// - `limit`: 1 for a mutex, N for a counting semaphore.
/// - `ttl_ms`: the lease TTL in milliseconds, 1 000 to 86 400 000; 0 for
///   the default (15 s). The lease is renewed every TTL/3 until released.
/// - `value`: the holder value stored with the lease (NULL: host name and
///   process id).
///
/// Strings are borrowed for the call only. Nothing is contacted yet.
/// Free the handle with `polylock_lock_free`.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_lock_new(
    client: *const polylock_client,
    name: *const c_char,
    limit: u32,
    ttl_ms: u64,
    value: *const c_char,
    out: *mut *mut polylock_lock,
) -> polylock_status {
    call::run(|| {
        call::require_out(out, "out")?;
        let client = CLIENTS.get(client)?;
        let name = call::text(name, "name")?;
        let value = call::optional_text(value, "value")?;
        let mut options = LockOptions::semaphore(limit);
        if ttl_ms != 0 {
            options = options.ttl(Duration::from_millis(ttl_ms));
        }
        if let Some(value) = value {
            options = options.value(value);
        }
        let lock = client.client.as_async().lock(name, options)?;
        let handle = LOCKS.insert(LockHandle {
            slot: LeaseSlot::new(lock),
            lost: Arc::default(),
            listener: OnceLock::new(),
        })?;
        call::write_out(out, handle, "out")
    })
}

/// Frees a lock handle. A pending acquisition on it (a `polylock_acquire`
/// blocked in another thread) is cancelled: that call returns
/// `POLYLOCK_CANCELLED`. A lease it still holds is released first
/// (blocking; call `polylock_release` before to see the outcome; a release
/// that fails transiently is retried in the background). After this
/// returns no lost callback of the handle runs any more, and the
/// registration's `user_data_free` has run; called from the handle's own
/// lost callback, the callback finishes first and `user_data_free` runs
/// when it returns. NULL or a freed handle gives `POLYLOCK_INVALID_HANDLE`
/// and changes nothing.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_lock_free(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| {
        let handle = LOCKS.remove(lock)?;
        handle.lost.close();
        // The outcome of releasing a held lease is not this call's: it
        // frees the handle either way.
        let _ = handle.slot.close_blocking();
        Ok(())
    })
}

/// Takes the lock if it is free now. `*acquired` is set to true when this
/// call took a lease, false when the lock is busy (still `POLYLOCK_OK`).
/// A handle holds one lease at a time: `POLYLOCK_USAGE` if it holds one or
/// is acquiring.
///
/// # Safety
/// `acquired` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_try_acquire(
    lock: *mut polylock_lock,
    acquired: *mut bool,
) -> polylock_status {
    call::run(|| {
        call::require_out(acquired, "acquired")?;
        let taken = LOCKS.get(lock)?.acquire(Wait::No, None)?;
        call::write_out(acquired, taken, "acquired")
    })
}

/// Takes the lock, waiting at most `timeout_ms` milliseconds (negative:
/// as long as it takes). `POLYLOCK_TIMEOUT` if the time ran out,
/// `POLYLOCK_CANCELLED` if `polylock_acquire_cancel` (or
/// `polylock_lock_free`) ended the wait from another thread. Waits are woken
/// by the backend's notifications, not by polling.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_acquire(
    lock: *mut polylock_lock,
    timeout_ms: i64,
) -> polylock_status {
    polylock_acquire_with(lock, timeout_ms, None, std::ptr::null_mut())
}

/// `polylock_acquire` with a wait-started hook: `wait_started` (may be
/// NULL) is called with `user_data` at most once, on the calling thread
/// (see `polylock_wait_started_callback`), when the acquisition starts
/// waiting because the lock is busy (on LDLM, whose server waits, as soon as the waiting call is sent).
/// It is never called after this function returned, so `user_data` needs
/// to live only as long as the call. Another thread that must act while the
/// wait is parked (cancel it, release the lock) waits for this signal
/// instead of sleeping.
///
/// # Safety
/// `wait_started` is NULL or a valid function; `user_data` is usable from
/// another thread until this call returns.
#[no_mangle]
pub unsafe extern "C" fn polylock_acquire_with(
    lock: *mut polylock_lock,
    timeout_ms: i64,
    wait_started: polylock_wait_started_callback,
    user_data: *mut c_void,
) -> polylock_status {
    call::run(|| {
        let wait = match u64::try_from(timeout_ms) {
            Ok(ms) => Wait::For(Duration::from_millis(ms)),
            Err(_) => Wait::Forever,
        };
        let hook = wait_started.map(|callback| WaitStarted {
            callback,
            user_data,
        });
        match LOCKS.get(lock)?.acquire(wait, hook)? {
            true => Ok(()),
            false => Err(Failure::new(
                polylock_status::POLYLOCK_TIMEOUT,
                "the wait ended without the lock",
            )),
        }
    })
}

/// Cancels the handle's pending acquisition (a `polylock_acquire` or
/// `polylock_acquire_with` blocked in another thread): that call returns
/// `POLYLOCK_CANCELLED`, and the handle is idle (free to acquire again) as
/// soon as this returns. A parked wait stops at once; an attempt already
/// sent to the backend is never cut in the middle, and a lease it brings
/// back is released, never kept. Does not block.
///
/// With nothing pending (no acquire in progress: none begun yet, or it
/// ended already) this is a no-op that also returns `POLYLOCK_OK`; a cancel
/// never affects a later acquisition. To cancel an acquire that another
/// thread may not have begun yet, wait for its wait-started hook
/// (`polylock_acquire_with`), or cancel from inside that hook.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_acquire_cancel(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| {
        LOCKS.get(lock)?.slot.cancel();
        Ok(())
    })
}

/// Chooses who renews the leases of the handle's next acquisitions:
/// polylock's keeper (`true`, the default) or the caller (`false`). A lease
/// the caller renews must see `polylock_renew` within its TTL (from its
/// grant or its last renewal); one that does not is released and reported
/// lost (`POLYLOCK_LOST`, lost callbacks run). A lease already held keeps
/// its way.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_lock_set_auto_renew(
    lock: *mut polylock_lock,
    auto_renew: bool,
) -> polylock_status {
    call::run(|| {
        LOCKS.get(lock)?.slot.set_auto_renew(auto_renew);
        Ok(())
    })
}

/// Renews the held lease now (the keeper renews on its own unless
/// `polylock_lock_set_auto_renew` turned that off; otherwise this is for
/// callers that want proof now). `POLYLOCK_NOT_HELD` without a lease,
/// `POLYLOCK_LOST` if it was lost.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_renew(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| Ok(LOCKS.get(lock)?.slot.renew_blocking()?))
}

/// Releases the held lease. A second release gives `POLYLOCK_NOT_HELD`; a
/// release after the lease was lost gives `POLYLOCK_LOST` (and the handle
/// is then free to acquire again). A transient failure
/// (`POLYLOCK_CONNECTION`: the backend unreachable) keeps the lease, held
/// and renewed, in the handle: call `polylock_release` again.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_release(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| Ok(LOCKS.get(lock)?.slot.release_blocking()?))
}

/// True while the handle holds a lease that is proven held. False for NULL
/// or freed handles.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_is_held(lock: *const polylock_lock) -> bool {
    call::query(false, || {
        LOCKS
            .get(lock)
            .ok()
            .and_then(|handle| handle.slot.lease())
            .is_some_and(|lease| lease.is_held())
    })
}

/// True when the held lease is due for renewal (past a third of its TTL
/// without one). False without a lease.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_needs_renew(lock: *const polylock_lock) -> bool {
    call::query(false, || {
        LOCKS
            .get(lock)
            .ok()
            .and_then(|handle| handle.slot.lease())
            .is_some_and(|lease| lease.is_held() && lease.needs_renew())
    })
}

/// Milliseconds the held lease is still proven held; 0 without a held
/// lease (and for NULL or freed handles).
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_time_to_expiration_ms(lock: *const polylock_lock) -> u64 {
    call::query(0, || {
        LOCKS
            .get(lock)
            .ok()
            .and_then(|handle| handle.slot.lease())
            .map_or(0, |lease| {
                u64::try_from(lease.time_to_expiration().as_millis()).unwrap_or(u64::MAX)
            })
    })
}

/// The fencing token of the handle's current (or last, if lost) lease:
/// `*has_token` is false where the backend gives none. `POLYLOCK_NOT_HELD`
/// when the handle has no lease.
///
/// # Safety
/// `has_token` and `token` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_fencing_token(
    lock: *const polylock_lock,
    has_token: *mut bool,
    token: *mut u64,
) -> polylock_status {
    call::run(|| {
        call::require_out(has_token, "has_token")?;
        call::require_out(token, "token")?;
        let lease = LOCKS.get(lock)?.slot.lease().ok_or_else(not_held)?;
        let fencing = lease.fencing_token();
        call::write_out(has_token, fencing.is_some(), "has_token")?;
        call::write_out(token, fencing.unwrap_or(0), "token")
    })
}

/// Writes the backend's id of the handle's current (or last) lease to
/// `*out` (the Consul session id, the MongoDB generation document's `_id`):
/// a new NUL-terminated string that the caller owns and frees with
/// `polylock_string_free`. `POLYLOCK_NOT_HELD` when the handle has no lease.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_holder(
    lock: *const polylock_lock,
    out: *mut *mut c_char,
) -> polylock_status {
    call::run(|| {
        call::require_out(out, "out")?;
        let lease = LOCKS.get(lock)?.slot.lease().ok_or_else(not_held)?;
        call::write_out(out, call::owned_string(lease.holder()), "out")
    })
}

/// Registers the handle's lost callback, replacing any earlier one (whose
/// `user_data_free` then runs once no call of it is in progress). A NULL
/// `callback` clears the registration (and frees this `user_data` at once).
///
/// The callback runs when a lease of this handle (the current one, or any
/// later one) is lost: once per lease, with the registration in place when
/// the loss is reported (a loss noticed before the handle's first
/// registration is reported to it when it is made), on polylock's notifier
/// thread (never on a thread of yours, never on a runtime worker; blocking
/// and calling polylock from it are allowed), and never after
/// `polylock_lock_free` returned. `user_data_free` (may be NULL) runs
/// exactly once per registration: when it is replaced or cleared, or when
/// the handle is freed.
///
/// # Safety
/// `callback` and `user_data_free` are NULL or valid functions; `user_data`
/// is usable from another thread until `user_data_free` is called.
#[no_mangle]
pub unsafe extern "C" fn polylock_on_lost(
    lock: *mut polylock_lock,
    callback: polylock_lost_callback,
    user_data: *mut c_void,
    user_data_free: polylock_user_data_free,
) -> polylock_status {
    call::run(|| {
        let handle = match LOCKS.get(lock) {
            Ok(handle) => handle,
            Err(failure) => {
                // The caller hands user_data over: free it even on failure.
                if let Some(free) = user_data_free {
                    free(user_data);
                }
                return Err(failure);
            }
        };
        handle.lost.register(callback, user_data, user_data_free);
        handle.listen();
        Ok(())
    })
}

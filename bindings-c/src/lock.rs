//! `polylock_lock`: one lock name with its options, holding at most one
//! lease at a time, and the calls that acquire, renew and release it.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use polylock_core::blocking::{Guard, Lock};
use polylock_core::{LockOptions, Wait};

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

/// A lease of the handle, and whether its loss was reported to a callback.
struct Current {
    guard: Arc<Guard>,
    reported: Arc<AtomicBool>,
}

#[derive(Default)]
struct LeaseState {
    /// The current (or last) lease.
    lease: Option<Current>,
    /// An acquisition is under way on some thread.
    acquiring: bool,
}

/// What a lock handle holds.
struct LockHandle {
    lock: Lock,
    state: Mutex<LeaseState>,
    lost: Arc<CallbackSlot>,
}

impl LockHandle {
    fn state(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<Arc<Guard>> {
        self.state()
            .lease
            .as_ref()
            .map(|current| current.guard.clone())
    }

    /// Has `current`'s loss reported to the registered callback: once, and
    /// at once if it is lost already. Several watches on one lease (one per
    /// registration) still report once.
    fn watch_loss(&self, current: &Current) {
        let (slot, reported) = (self.lost.clone(), current.reported.clone());
        current.guard.on_lost(move |event| {
            // Lost callbacks run one at a time on the notifier thread.
            if !reported.load(Ordering::SeqCst) && slot.fire(event) {
                reported.store(true, Ordering::SeqCst);
            }
        });
    }

    fn held(&self) -> Result<Arc<Guard>, Failure> {
        self.current().ok_or_else(not_held)
    }

    /// Acquires as `wait` allows; true if a lease was taken.
    fn acquire(&self, wait: Wait) -> Result<bool, Failure> {
        {
            let mut state = self.state();
            if state.acquiring || state.lease.as_ref().is_some_and(|c| c.guard.is_held()) {
                return Err(Failure::new(
                    polylock_status::POLYLOCK_USAGE,
                    format!(
                        "lock handle {:?} already holds or is acquiring a lease; release it, \
                         or use another handle for another slot",
                        self.lock.name()
                    ),
                ));
            }
            state.acquiring = true;
        }
        let outcome = self.lock.acquire_with(wait);
        let mut state = self.state();
        state.acquiring = false;
        let Some(guard) = outcome? else {
            return Ok(false);
        };
        let current = Current {
            guard: Arc::new(guard),
            reported: Arc::default(),
        };
        self.watch_loss(&current);
        state.lease = Some(current);
        Ok(true)
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
        let lock = client.client.lock(name, options)?;
        let handle = LOCKS.insert(LockHandle {
            lock,
            state: Mutex::default(),
            lost: Arc::default(),
        });
        call::write_out(out, handle, "out")
    })
}

/// Frees a lock handle. A lease it still holds is released first (blocking;
/// call `polylock_release` before to see the outcome). After this returns
/// no lost callback of the handle runs any more, and the registration's
/// `user_data_free` has run; called from the handle's own lost callback, the
/// callback finishes first and `user_data_free` runs when it returns. NULL
/// or a freed handle gives `POLYLOCK_INVALID_HANDLE` and changes nothing.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_lock_free(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| {
        let handle = LOCKS.remove(lock)?;
        handle.lost.close();
        let lease = handle.state().lease.take();
        drop(lease); // releases a held lease
        Ok(())
    })
}

/// Takes the lock if it is free now. `*acquired` is set to true when this
/// call took a lease, false when the lock is busy (still `POLYLOCK_OK`).
/// A handle holds one lease at a time: `POLYLOCK_USAGE` if it holds one.
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
        let taken = LOCKS.get(lock)?.acquire(Wait::No)?;
        call::write_out(acquired, taken, "acquired")
    })
}

/// Takes the lock, waiting at most `timeout_ms` milliseconds (negative:
/// as long as it takes). `POLYLOCK_TIMEOUT` if the time ran out. Waits are
/// woken by the backend's notifications, not by polling.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_acquire(
    lock: *mut polylock_lock,
    timeout_ms: i64,
) -> polylock_status {
    call::run(|| {
        let wait = match u64::try_from(timeout_ms) {
            Ok(ms) => Wait::For(Duration::from_millis(ms)),
            Err(_) => Wait::Forever,
        };
        match LOCKS.get(lock)?.acquire(wait)? {
            true => Ok(()),
            false => Err(Failure::new(
                polylock_status::POLYLOCK_TIMEOUT,
                "the wait ended without the lock",
            )),
        }
    })
}

/// Renews the held lease now (the keeper renews on its own; this is for
/// callers that want proof now). `POLYLOCK_NOT_HELD` without a lease,
/// `POLYLOCK_LOST` if it was lost.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_renew(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| Ok(LOCKS.get(lock)?.held()?.renew()?))
}

/// Releases the held lease. A second release gives `POLYLOCK_NOT_HELD`; a
/// release after the lease was lost gives `POLYLOCK_LOST` (and the handle
/// is then free to acquire again).
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_release(lock: *mut polylock_lock) -> polylock_status {
    call::run(|| {
        let lease = LOCKS.get(lock)?.state().lease.take().ok_or_else(not_held)?;
        Ok(lease.guard.release()?)
    })
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
            .and_then(|handle| handle.current())
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
            .and_then(|handle| handle.current())
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
            .and_then(|handle| handle.current())
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
        let fencing = LOCKS.get(lock)?.held()?.fencing_token();
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
        let holder = LOCKS.get(lock)?.held()?.holder().to_string();
        call::write_out(out, call::owned_string(&holder), "out")
    })
}

/// Registers the handle's lost callback, replacing any earlier one (whose
/// `user_data_free` then runs once no call of it is in progress). A NULL
/// `callback` clears the registration (and frees this `user_data` at once).
///
/// The callback runs when a lease of this handle (the current one, or any
/// later one) is lost: at most once per lease, on polylock's notifier
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
        // A lease lost before any callback was registered is reported now.
        if let Some(current) = &handle.state().lease {
            handle.watch_loss(current);
        }
        Ok(())
    })
}

//! `NativeLock`: a lock handle, i.e. a [`polylock::LeaseSlot`] (one lease
//! at a time, a cancellable pending acquisition, a release that can be
//! retried after a transient failure, removable lost listeners).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{BigInt, Function};
use napi::{sys, Env};
use napi_derive::napi;
use polylock::{AcquireHooks, LeaseSlot, ListenerId, Wait};

use crate::bridge::{self, Raw};
use crate::errors::{self, millis};
use crate::lease::{lost_event, NativeLease};
use crate::napi_raw::JsCallback;

/// A lock handle.
#[napi]
pub struct NativeLock {
    slot: LeaseSlot,
    /// The slot's listeners by the id `index.js` gave them.
    listeners: Mutex<HashMap<u32, ListenerId>>,
}

impl NativeLock {
    pub(crate) fn new(lock: polylock::Lock) -> Self {
        NativeLock {
            slot: LeaseSlot::new(lock),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<u32, ListenerId>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn null(env: sys::napi_env) -> sys::napi_value {
    let mut null = std::ptr::null_mut();
    unsafe { sys::napi_get_null(env, &mut null) };
    null
}

/// How long to wait: null → as long as it takes; 0 → no wait.
fn wait(timeout_ms: Option<f64>) -> polylock::Result<Wait> {
    Ok(match timeout_ms {
        None => Wait::Forever,
        Some(0.0) => Wait::No,
        Some(ms) => Wait::For(millis("timeout", ms)?),
    })
}

#[napi]
impl NativeLock {
    /// Takes the lock, waiting at most `timeout_ms` (null: as long as it
    /// takes; 0: no wait): a Promise of the `Lease`, or of null when a zero
    /// wait found the lock busy. `on_wait_started` is called (on the JS
    /// thread, before the Promise settles) once the wait parked because the
    /// lock was busy. Rejects with USAGE unless the handle is idle; ABORTED
    /// after [`cancel`](Self::cancel).
    #[napi]
    pub fn acquire(
        &self,
        env: Env,
        timeout_ms: Option<f64>,
        on_wait_started: Option<Function<'_>>,
    ) -> napi::Result<Raw> {
        let hook = match on_wait_started {
            Some(function) => Some(JsCallback::new(&env, &function)?),
            None => None,
        };
        let (deferred, promise) = bridge::promise(&env)?;
        let wait = match wait(timeout_ms) {
            Ok(wait) => wait,
            Err(error) => {
                if let Some(hook) = hook {
                    hook.discard(env.raw());
                }
                deferred.reject_now(&env, &error);
                return Ok(promise);
            }
        };
        let mut hooks = AcquireHooks::default();
        if let Some(hook) = hook.clone() {
            let queue = deferred.queue();
            hooks.wait_started = Some(Box::new(move || {
                queue.post(Box::new(move |env| hook.call_once(env)));
            }));
        }
        // The pending acquisition keeps its handle alive; the deferred
        // comes back here if the acquisition does not start.
        let slot = self.slot.clone();
        let finished_hook = hook.clone();
        let pending = Arc::new(Mutex::new(Some(deferred)));
        let settle = pending.clone();
        let started = self.slot.start_acquire(wait, hooks, move |outcome| {
            let Some(deferred) = settle.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                return;
            };
            deferred.settle(move |env| {
                if let Some(hook) = finished_hook {
                    hook.discard(env);
                }
                match outcome {
                    Ok(Some(lease)) => NativeLease::new(lease, slot)
                        .into_lease(env)
                        .map_err(|e| errors::from_napi(env, e)),
                    Ok(None) => Ok(null(env)),
                    Err(error) => Err(errors::value(env, &error)),
                }
            });
        });
        if let Err(error) = started {
            if let Some(hook) = hook {
                hook.discard(env.raw());
            }
            let deferred = pending.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(deferred) = deferred {
                deferred.reject_now(&env, &error);
            }
        }
        Ok(promise)
    }

    /// Cancels the pending acquisition (its Promise rejects with ABORTED;
    /// a lease granted meanwhile is released); false if there was none.
    #[napi]
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// True while an acquisition is under way.
    #[napi(getter)]
    pub fn is_acquiring(&self) -> bool {
        self.slot.is_acquiring()
    }

    /// Releases the handle's lease: a Promise. NOT_HELD without one,
    /// LOCK_LOST if it was lost (the handle is free then); after a
    /// transient failure (CONNECTION) the lease stays held: retry.
    #[napi]
    pub fn release(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let slot = self.slot.clone();
        polylock::spawn(async move { deferred.settle_result(slot.release().await) });
        Ok(promise)
    }

    /// Renews the handle's lease now: a Promise.
    #[napi]
    pub fn renew(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let slot = self.slot.clone();
        polylock::spawn(async move { deferred.settle_result(slot.renew().await) });
        Ok(promise)
    }

    /// Tells `index.js`'s lost-event dispatcher of every lost lease of this
    /// handle, with listener `id` (the current lease's and every later
    /// one's, once per lease). Holds no JavaScript value: the listener
    /// keeps nothing alive.
    #[napi]
    pub fn on_lost(&self, id: u32) -> napi::Result<()> {
        let queue = bridge::queue()?;
        let listener = self.slot.on_lost(Arc::new(move |event| {
            let event = event.clone();
            queue.post(Box::new(move |env| {
                if let Ok(event) = lost_event(env, event) {
                    bridge::dispatch_lost(env, id, event);
                }
            }));
        }));
        if let Some(old) = self.listeners().insert(id, listener) {
            self.slot.remove_lost_listener(old);
        }
        Ok(())
    }

    /// Removes listener `id`; true if it was registered.
    #[napi]
    pub fn off_lost(&self, id: u32) -> bool {
        let listener = self.listeners().remove(&id);
        listener.is_some_and(|listener| self.slot.remove_lost_listener(listener))
    }

    /// The lock's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.slot.lock().name().to_string()
    }

    /// The lock's limit.
    #[napi(getter)]
    pub fn limit(&self) -> u32 {
        self.slot.lock().limit()
    }

    /// Stops renewing the handle's lease without releasing it, as a crashed
    /// process would: the backend frees the lock when its TTL runs out, and
    /// no lost event fires. False when the handle holds no live lease.
    /// (`mongo-dlock.js`'s `close()`: its locks are left to expire.)
    #[napi]
    pub fn abandon(&self) -> bool {
        match self.slot.lease() {
            Some(lease) if lease.is_held() => {
                lease.abandon();
                true
            }
            _ => false,
        }
    }

    /// True while the handle holds a proven lease.
    #[napi(getter)]
    pub fn is_held(&self) -> bool {
        self.slot.lease().is_some_and(|lease| lease.is_held())
    }

    /// The current (or last lost) lease's fencing token; null without one.
    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<BigInt> {
        self.slot
            .lease()
            .and_then(|lease| lease.fencing_token())
            .map(BigInt::from)
    }

    /// Ms the current lease is still proven held (0 without one).
    #[napi(getter)]
    pub fn time_to_expiration(&self) -> f64 {
        self.slot.lease().map_or(0.0, |lease| {
            lease.time_to_expiration().as_secs_f64() * 1000.0
        })
    }
}

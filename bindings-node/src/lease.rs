//! `NativeLease`: a view of one lease of a lock handle (dropping it does not
//! release; the handle keeps the lease). Its release and renewal act on this
//! lease, never on a later one of the same handle.

use std::sync::Arc;

use napi::bindgen_prelude::{BigInt, ToNapiValue};
use napi::{sys, Env};
use napi_derive::napi;
use polylock::LeaseSlot;

use crate::bridge::{self, Raw};

/// What a lost callback receives.
#[napi(object)]
pub struct LostEventJs {
    /// The lock's name.
    pub name: String,
    /// The backend's id of the lost lease.
    pub holder: String,
    /// The lost lease's fencing token, if the backend has them.
    pub fencing_token: Option<BigInt>,
    /// Why the lease was lost.
    pub reason: String,
}

/// The JavaScript object of a lost event (JS thread).
pub(crate) fn lost_event(
    env: sys::napi_env,
    event: polylock::LostEvent,
) -> napi::Result<sys::napi_value> {
    let event = LostEventJs {
        name: event.name,
        holder: event.holder,
        fencing_token: event.fencing_token.map(BigInt::from),
        reason: event.reason,
    };
    unsafe { ToNapiValue::to_napi_value(env, event) }
}

/// A lease of a lock handle.
#[napi]
pub struct NativeLease {
    lease: Arc<polylock::Lease>,
    /// The handle that keeps the lease (kept alive by its leases).
    slot: LeaseSlot,
}

impl NativeLease {
    pub(crate) fn new(lease: polylock::Lease, slot: LeaseSlot) -> Self {
        NativeLease {
            lease: Arc::new(lease),
            slot,
        }
    }

    /// `new Lease(nativeLease)`: the JavaScript `Lease` (JS thread).
    pub(crate) fn into_lease(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        let native = unsafe { ToNapiValue::to_napi_value(env, self) }?;
        bridge::new_lease(env, native)
    }
}

#[napi]
impl NativeLease {
    /// The lock's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.lease.name().to_string()
    }

    /// The backend's id of this lease.
    #[napi(getter)]
    pub fn holder(&self) -> String {
        self.lease.holder().to_string()
    }

    /// Strictly increasing per name; null where the backend has none.
    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<BigInt> {
        self.lease.fencing_token().map(BigInt::from)
    }

    /// The granted TTL in ms.
    #[napi(getter)]
    pub fn ttl(&self) -> f64 {
        self.lease.ttl().as_secs_f64() * 1000.0
    }

    /// True while held and proven.
    #[napi(getter)]
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// Ms the lease is still proven held (0 once it is not).
    #[napi(getter)]
    pub fn time_to_expiration(&self) -> f64 {
        self.lease.time_to_expiration().as_secs_f64() * 1000.0
    }

    /// Releases this lease: a Promise (NOT_HELD when released already,
    /// LOCK_LOST when lost; after a transient failure it stays held).
    #[napi]
    pub fn release(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let (slot, lease) = (self.slot.clone(), self.lease.clone());
        polylock::spawn(async move { deferred.settle_result(slot.release_lease(&lease).await) });
        Ok(promise)
    }

    /// Renews this lease now: a Promise.
    #[napi]
    pub fn renew(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let (slot, lease) = (self.slot.clone(), self.lease.clone());
        polylock::spawn(async move { deferred.settle_result(slot.renew_lease(&lease).await) });
        Ok(promise)
    }

    /// Tells `index.js`'s lost-event dispatcher, with listener `id`, if this
    /// lease is lost (once; at once if it is lost already). Holds no
    /// JavaScript value.
    #[napi]
    pub fn on_lost(&self, id: u32) -> napi::Result<()> {
        let queue = bridge::queue()?;
        self.lease.on_lost(move |event| {
            let event = event.clone();
            queue.post(Box::new(move |env| {
                if let Ok(event) = lost_event(env, event) {
                    bridge::dispatch_lost(env, id, event);
                }
            }));
        });
        Ok(())
    }
}

//! Leases: a view of one lease of a lock handle (dropping it does not
//! release; the handle keeps the lease), whose release and renewal act on
//! this lease, never on a later one of the same handle.
//!
//! The view is wrapped straight into `index.js`'s `Lease` object
//! (`napi_wrap`, type-tagged, freed by its finalizer), and the `lease*`
//! functions here take that object: one JavaScript object per acquisition,
//! no native class to construct on the hot path.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{BigInt, Object, ToNapiValue};
use napi::{sys, Env, JsValue, Status};
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

/// What a `Lease` object wraps.
pub(crate) struct NativeLease {
    lease: Arc<polylock::Lease>,
    /// The handle that keeps the lease (kept alive by its leases).
    slot: LeaseSlot,
}

/// Marks the objects that wrap a [`NativeLease`] (nothing else is
/// unwrapped as one).
const TAG: sys::napi_type_tag = sys::napi_type_tag {
    lower: 0x706f_6c79_6c6f_636b, // "polylock"
    upper: 0x6c65_6173_6500_0001, // "lease", 1
};

impl NativeLease {
    pub(crate) fn new(lease: polylock::Lease, slot: LeaseSlot) -> Self {
        NativeLease {
            lease: Arc::new(lease),
            slot,
        }
    }

    /// `new Lease()` wrapping this view: the JavaScript `Lease` (JS
    /// thread).
    pub(crate) fn into_lease(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        let object = bridge::new_lease(env)?;
        let data = Box::into_raw(Box::new(self));
        let status = unsafe {
            sys::napi_wrap(
                env,
                object,
                data.cast(),
                Some(finalize),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if status != sys::Status::napi_ok {
            drop(unsafe { Box::from_raw(data) });
            return Err(napi::Error::new(
                Status::from(status),
                "cannot wrap a Lease",
            ));
        }
        unsafe { sys::napi_type_tag_object(env, object, &TAG) };
        Ok(object)
    }
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(unsafe { Box::from_raw(data.cast::<NativeLease>()) });
}

/// The view `object` wraps; INVALID_ARGUMENT for anything else.
fn unwrap<'a>(env: &Env, object: &Object<'a>) -> napi::Result<&'a NativeLease> {
    let raw = object.raw();
    let mut tagged = false;
    unsafe { sys::napi_check_object_type_tag(env.raw(), raw, &TAG, &mut tagged) };
    let mut data = ptr::null_mut();
    if tagged && unsafe { sys::napi_unwrap(env.raw(), raw, &mut data) } == sys::Status::napi_ok {
        // SAFETY: tagged objects wrap a NativeLease, alive while the object
        // is (it is an argument of the running call).
        return Ok(unsafe { &*data.cast::<NativeLease>() });
    }
    Err(crate::errors::throw(
        env,
        &polylock::Error::InvalidArgument("not a Lease made by polylock".into()),
    ))
}

/// The lock's name.
#[napi]
pub fn lease_name(env: Env, lease: Object<'_>) -> napi::Result<String> {
    Ok(unwrap(&env, &lease)?.lease.name().to_string())
}

/// The backend's id of the lease.
#[napi]
pub fn lease_holder(env: Env, lease: Object<'_>) -> napi::Result<String> {
    Ok(unwrap(&env, &lease)?.lease.holder().to_string())
}

/// Strictly increasing per name; null where the backend has none.
#[napi]
pub fn lease_fencing_token(env: Env, lease: Object<'_>) -> napi::Result<Option<BigInt>> {
    Ok(unwrap(&env, &lease)?
        .lease
        .fencing_token()
        .map(BigInt::from))
}

/// The granted TTL in ms.
#[napi]
pub fn lease_ttl(env: Env, lease: Object<'_>) -> napi::Result<f64> {
    Ok(unwrap(&env, &lease)?.lease.ttl().as_secs_f64() * 1000.0)
}

/// True while held and proven.
#[napi]
pub fn lease_is_held(env: Env, lease: Object<'_>) -> napi::Result<bool> {
    Ok(unwrap(&env, &lease)?.lease.is_held())
}

/// Ms the lease is still proven held (0 once it is not).
#[napi]
pub fn lease_time_to_expiration(env: Env, lease: Object<'_>) -> napi::Result<f64> {
    Ok(unwrap(&env, &lease)?
        .lease
        .time_to_expiration()
        .as_secs_f64()
        * 1000.0)
}

/// Releases the lease: a Promise (NOT_HELD when released already, LOCK_LOST
/// when lost; after a transient failure it stays held).
#[napi]
pub fn lease_release(env: Env, lease: Object<'_>) -> napi::Result<Raw> {
    let native = unwrap(&env, &lease)?;
    let (deferred, promise) = bridge::promise(&env)?;
    let (slot, lease) = (native.slot.clone(), native.lease.clone());
    polylock::spawn(async move { deferred.settle_result(slot.release_lease(&lease).await) });
    Ok(promise)
}

/// Renews the lease now: a Promise.
#[napi]
pub fn lease_renew(env: Env, lease: Object<'_>) -> napi::Result<Raw> {
    let native = unwrap(&env, &lease)?;
    let (deferred, promise) = bridge::promise(&env)?;
    let (slot, lease) = (native.slot.clone(), native.lease.clone());
    polylock::spawn(async move { deferred.settle_result(slot.renew_lease(&lease).await) });
    Ok(promise)
}

/// Tells `index.js`'s lost-event dispatcher, with listener `id`, if the
/// lease is lost (once; at once if it is lost already). Holds no
/// JavaScript value.
#[napi]
pub fn lease_on_lost(env: Env, lease: Object<'_>, id: u32) -> napi::Result<()> {
    let native = unwrap(&env, &lease)?;
    let queue = bridge::queue()?;
    native.lease.on_lost(move |event| {
        let event = event.clone();
        queue.post(Box::new(move |env| {
            if let Ok(event) = lost_event(env, event) {
                bridge::dispatch_lost(env, id, event);
            }
        }));
    });
    Ok(())
}

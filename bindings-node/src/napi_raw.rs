//! Small Node-API helpers for the JS thread: calls, constructors,
//! references, strings, exceptions, and a function kept for one later call.

use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue, Status};

/// Calls `function()` (JS thread); an exception in it becomes an uncaught
/// exception.
pub(crate) fn call(env: sys::napi_env, function: sys::napi_value, args: &[sys::napi_value]) {
    unsafe {
        let mut this = ptr::null_mut();
        sys::napi_get_undefined(env, &mut this);
        let mut result = ptr::null_mut();
        let status =
            sys::napi_call_function(env, this, function, args.len(), args.as_ptr(), &mut result);
        if status != sys::Status::napi_ok {
            rethrow_uncaught(env);
        }
    }
}

fn rethrow_uncaught(env: sys::napi_env) {
    unsafe {
        let mut pending = false;
        sys::napi_is_exception_pending(env, &mut pending);
        if pending {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
}

pub(crate) fn construct(
    env: sys::napi_env,
    class: sys::napi_value,
    args: &[sys::napi_value],
) -> Option<sys::napi_value> {
    let mut out = ptr::null_mut();
    let status = unsafe { sys::napi_new_instance(env, class, args.len(), args.as_ptr(), &mut out) };
    if status == sys::Status::napi_ok {
        Some(out)
    } else {
        clear_exception(env);
        None
    }
}

pub(crate) fn clear_exception(env: sys::napi_env) {
    unsafe {
        let mut pending = false;
        sys::napi_is_exception_pending(env, &mut pending);
        if pending {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
        }
    }
}

pub(crate) fn reference_value(
    env: sys::napi_env,
    reference: sys::napi_ref,
) -> Option<sys::napi_value> {
    let mut out = ptr::null_mut();
    let status = unsafe { sys::napi_get_reference_value(env, reference, &mut out) };
    (status == sys::Status::napi_ok && !out.is_null()).then_some(out)
}

pub(crate) fn string(env: sys::napi_env, text: &str) -> Option<sys::napi_value> {
    let mut out = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut out)
    };
    (status == sys::Status::napi_ok).then_some(out)
}

/// A strong reference to a JavaScript function, called at most once from
/// a job (a wait-started hook); deleted on the JS thread by whichever of its
/// jobs runs first, or by [`JsCallback::discard`].
#[derive(Clone)]
pub(crate) struct JsCallback {
    slot: Arc<Mutex<Option<SendRef>>>,
}

struct SendRef(sys::napi_ref);
// SAFETY: the reference is only read and deleted on the JS thread (in jobs).
unsafe impl Send for SendRef {}

impl JsCallback {
    /// References `function` (JS thread).
    pub(crate) fn new(env: &Env, function: &Function<'_>) -> napi::Result<Self> {
        let mut out = ptr::null_mut();
        check(unsafe { sys::napi_create_reference(env.raw(), function.raw(), 1, &mut out) })?;
        Ok(JsCallback {
            slot: Arc::new(Mutex::new(Some(SendRef(out)))),
        })
    }

    fn take(&self) -> Option<sys::napi_ref> {
        let taken = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.map(|r| r.0)
    }

    /// Calls the function with no arguments unless it was called or
    /// discarded already (JS thread).
    pub(crate) fn call_once(&self, env: sys::napi_env) {
        if let Some(reference) = self.take() {
            if let Some(function) = reference_value(env, reference) {
                call(env, function, &[]);
            }
            unsafe { sys::napi_delete_reference(env, reference) };
        }
    }

    /// Drops the reference without calling it (JS thread).
    pub(crate) fn discard(&self, env: sys::napi_env) {
        if let Some(reference) = self.take() {
            unsafe { sys::napi_delete_reference(env, reference) };
        }
    }
}

pub(crate) fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Status::from(status),
            "a Node-API call failed",
        ))
    }
}

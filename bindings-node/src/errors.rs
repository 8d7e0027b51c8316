//! polylock errors as JavaScript `PolylockError`s, made natively: the class
//! `index.js` registers is constructed with the stable code
//! (`new PolylockError("LOCK_TIMEOUT", message)`), so `err.code` and
//! `err instanceof PolylockError` hold without parsing messages.

use std::ptr;

use napi::{sys, Env, Status};

use crate::{bridge, napi_raw};

/// The stable JavaScript code of a polylock error kind.
pub(crate) fn code(kind: polylock::ErrorKind) -> &'static str {
    use polylock::ErrorKind as K;
    match kind {
        K::Timeout => "LOCK_TIMEOUT",
        K::Lost => "LOCK_LOST",
        K::NotHeld => "NOT_HELD",
        K::LimitMismatch => "LIMIT_MISMATCH",
        K::Conflict => "CONFLICT",
        K::Connection => "CONNECTION",
        K::Auth => "AUTH",
        K::InvalidArgument => "INVALID_ARGUMENT",
        K::Usage => "USAGE",
        // Only an AbortSignal cancels a Node acquisition.
        K::Cancelled => "ABORTED",
        _ => "BACKEND",
    }
}

/// The message of a polylock error, as JavaScript shows it.
fn message(error: &polylock::Error) -> String {
    match error.kind() {
        polylock::ErrorKind::Cancelled => {
            format!("the wait was aborted by its AbortSignal ({error})")
        }
        _ => error.to_string(),
    }
}

/// The `PolylockError` for `error` (JS thread).
pub(crate) fn value(env: sys::napi_env, error: &polylock::Error) -> sys::napi_value {
    make(env, code(error.kind()), &message(error))
}

/// A `PolylockError` with `code` and `message` (JS thread); a plain `Error`
/// with `code` set if the class is not registered.
pub(crate) fn make(env: sys::napi_env, code: &str, message: &str) -> sys::napi_value {
    if let Some(value) = bridge::new_error(env, code, message) {
        return value;
    }
    let mut out = ptr::null_mut();
    if let (Some(code), Some(message)) =
        (napi_raw::string(env, code), napi_raw::string(env, message))
    {
        unsafe { sys::napi_create_error(env, code, message, &mut out) };
    }
    out
}

/// A napi failure inside the addon (a conversion) as a `BACKEND` error.
pub(crate) fn from_napi(env: sys::napi_env, error: napi::Error) -> sys::napi_value {
    napi_raw::clear_exception(env);
    make(env, "BACKEND", &format!("polylock's Node addon: {error}"))
}

/// Throws the `PolylockError` for `error` and returns the napi error that
/// says an exception is pending (napi-rs then throws nothing more).
pub(crate) fn throw(env: &Env, error: &polylock::Error) -> napi::Error {
    let value = value(env.raw(), error);
    unsafe { sys::napi_throw(env.raw(), value) };
    napi::Error::new(Status::PendingException, error.to_string())
}

/// `polylock::Result<T>` → `napi::Result<T>`, throwing a `PolylockError`.
pub(crate) trait OrThrow<T> {
    /// Throws the error, if any, on `env`.
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for polylock::Result<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|error| throw(env, &error))
    }
}

/// Milliseconds from JavaScript (a number) as a duration; negative, NaN or
/// infinite values are invalid arguments.
pub(crate) fn millis(what: &str, ms: f64) -> polylock::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        polylock::Error::InvalidArgument(format!(
            "{what} must be a non-negative number of milliseconds, not {ms}"
        ))
    })
}

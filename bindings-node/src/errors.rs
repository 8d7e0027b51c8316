//! polylock errors as napi errors: the message carries the stable code
//! first (`"timeout: …"`), which `index.js` maps to `err.code`.

/// The napi error for a polylock error.
pub(crate) fn to_js(error: polylock::Error) -> napi::Error {
    napi::Error::from_reason(format!("{}: {error}", error.kind().code()))
}

/// The napi error for a wait cancelled through its AbortSignal.
pub(crate) fn aborted() -> napi::Error {
    napi::Error::from_reason("aborted: the wait was aborted by its AbortSignal")
}

/// `polylock::Result<T>` → `napi::Result<T>`.
pub(crate) trait IntoJs<T> {
    /// Converts the error, if any.
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJs<T> for polylock::Result<T> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_js)
    }
}

/// Milliseconds from JavaScript (a number) as a duration; negative, NaN or
/// infinite values are invalid arguments.
pub(crate) fn millis(what: &str, ms: f64) -> napi::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        to_js(polylock::Error::InvalidArgument(format!(
            "{what} must be a non-negative number of milliseconds, not {ms}"
        )))
    })
}

//! The one wrapper every entry point runs its body in: panics are caught
//! and become `POLYLOCK_PANIC`, failures set the thread's last error, and C
//! strings are checked (NULL, UTF-8) before use.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::polylock_status;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Why a call failed: its status and a message for `polylock_last_error`.
pub(crate) struct Failure {
    pub status: polylock_status,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(status: polylock_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(polylock_status::POLYLOCK_INVALID_ARGUMENT, message)
    }
}

impl From<polylock_core::Error> for Failure {
    fn from(error: polylock_core::Error) -> Self {
        Failure::new(error.kind().into(), error.to_string())
    }
}

/// Runs `body`, turning its failure or panic into a status code.
pub(crate) fn run(body: impl FnOnce() -> Result<(), Failure>) -> polylock_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return polylock_status::POLYLOCK_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Failure::new(
                polylock_status::POLYLOCK_PANIC,
                format!("polylock panicked (a bug; please report it): {what}"),
            )
        }
    };
    set_last_error(&failure.message);
    failure.status
}

/// Runs a query that cannot fail, answering `fallback` if it panics.
pub(crate) fn query<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// The message of the most recent failed `polylock_` call on this thread
/// (`""` if none failed yet). Successful calls leave it as it is. The string
/// belongs to polylock and stays valid until the next failing call on this
/// thread; copy it to keep it. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn polylock_last_error() -> *const c_char {
    query(c"".as_ptr(), || {
        LAST_ERROR.with(|last| last.borrow().as_ptr())
    })
}

/// A required UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    optional_text(ptr, what)?.ok_or_else(|| Failure::invalid(format!("{what} must not be NULL")))
}

/// An optional UTF-8 string argument (NULL → `None`).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn optional_text<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map(Some)
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Writes `value` through a required out-pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} must not be NULL")));
    }
    out.write(value);
    Ok(())
}

/// Checks that a required out-pointer is not NULL, before any work.
pub(crate) fn require_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid(format!("{what} must not be NULL")));
    }
    Ok(())
}

/// A string handed to the caller, who frees it with `polylock_string_free`.
pub(crate) fn owned_string(text: &str) -> *mut c_char {
    CString::new(text.replace('\0', " "))
        .unwrap_or_default()
        .into_raw()
}

/// Frees a string polylock handed out as caller-owned (`polylock_holder`).
/// NULL is ignored.
///
/// # Safety
/// `text` is NULL or a string from a polylock call documented as
/// caller-owned, not freed before.
#[no_mangle]
pub unsafe extern "C" fn polylock_string_free(text: *mut c_char) {
    if !text.is_null() {
        query((), || drop(CString::from_raw(text)));
    }
}

//! Status codes: what every fallible `polylock_` call returns.

use std::ffi::c_char;

use polylock_core::ErrorKind;

/// The outcome of a `polylock_` call. `POLYLOCK_OK` is 0; on any other
/// value `polylock_last_error()` describes the failure.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polylock_status {
    /// Success.
    POLYLOCK_OK = 0,
    /// Waiting for the lock ran out of time.
    POLYLOCK_TIMEOUT = 1,
    /// The lease was lost (expired or taken away) before this call.
    POLYLOCK_LOST = 2,
    /// No lease is held: never acquired, or already released.
    POLYLOCK_NOT_HELD = 3,
    /// The lock is held with another limit (mutex vs. semaphore size).
    POLYLOCK_LIMIT_MISMATCH = 4,
    /// The name is used by something that is not a compatible lock.
    POLYLOCK_CONFLICT = 5,
    /// The backend could not be reached, or the connection broke.
    POLYLOCK_CONNECTION = 6,
    /// The backend refused the credentials.
    POLYLOCK_AUTH = 7,
    /// A name, option, URL or string argument is invalid (including NULL
    /// where a value is required, and text that is not UTF-8).
    POLYLOCK_INVALID_ARGUMENT = 8,
    /// The backend answered with something polylock cannot use.
    POLYLOCK_BACKEND = 9,
    /// The call cannot work here: a second acquisition on a handle that
    /// holds or is acquiring a lease, or a client used in a forked child.
    POLYLOCK_USAGE = 10,
    /// The handle is NULL, freed already, or not a polylock handle.
    POLYLOCK_INVALID_HANDLE = 11,
    /// polylock panicked inside this call (a bug; please report it). The
    /// panic was caught and went no further.
    POLYLOCK_PANIC = 12,
    /// The pending acquisition was cancelled (`polylock_acquire_cancel`, or
    /// the handle freed) before it took the lock.
    POLYLOCK_CANCELLED = 13,
}

impl From<ErrorKind> for polylock_status {
    fn from(kind: ErrorKind) -> Self {
        use polylock_status::*;
        match kind {
            ErrorKind::Timeout => POLYLOCK_TIMEOUT,
            ErrorKind::Lost => POLYLOCK_LOST,
            ErrorKind::NotHeld => POLYLOCK_NOT_HELD,
            ErrorKind::LimitMismatch => POLYLOCK_LIMIT_MISMATCH,
            ErrorKind::Conflict => POLYLOCK_CONFLICT,
            ErrorKind::Connection => POLYLOCK_CONNECTION,
            ErrorKind::Auth => POLYLOCK_AUTH,
            ErrorKind::InvalidArgument => POLYLOCK_INVALID_ARGUMENT,
            ErrorKind::Usage => POLYLOCK_USAGE,
            ErrorKind::Cancelled => POLYLOCK_CANCELLED,
            _ => POLYLOCK_BACKEND,
        }
    }
}

impl polylock_status {
    /// The status's stable lowercase name, NUL-terminated.
    fn name(self) -> &'static str {
        use polylock_status::*;
        match self {
            POLYLOCK_OK => "ok\0",
            POLYLOCK_TIMEOUT => "timeout\0",
            POLYLOCK_LOST => "lost\0",
            POLYLOCK_NOT_HELD => "not_held\0",
            POLYLOCK_LIMIT_MISMATCH => "limit_mismatch\0",
            POLYLOCK_CONFLICT => "conflict\0",
            POLYLOCK_CONNECTION => "connection\0",
            POLYLOCK_AUTH => "auth\0",
            POLYLOCK_INVALID_ARGUMENT => "invalid_argument\0",
            POLYLOCK_BACKEND => "backend\0",
            POLYLOCK_USAGE => "usage\0",
            POLYLOCK_INVALID_HANDLE => "invalid_handle\0",
            POLYLOCK_PANIC => "panic\0",
            POLYLOCK_CANCELLED => "cancelled\0",
        }
    }
}

/// The stable lowercase name of `status` (`"timeout"`, `"lost"`, …; the
/// same codes the other bindings use), or `"unknown"` for a value that is
/// not a status. Static storage: never free it.
#[no_mangle]
pub extern "C" fn polylock_status_name(status: i32) -> *const c_char {
    use polylock_status::*;
    let known = [
        POLYLOCK_OK,
        POLYLOCK_TIMEOUT,
        POLYLOCK_LOST,
        POLYLOCK_NOT_HELD,
        POLYLOCK_LIMIT_MISMATCH,
        POLYLOCK_CONFLICT,
        POLYLOCK_CONNECTION,
        POLYLOCK_AUTH,
        POLYLOCK_INVALID_ARGUMENT,
        POLYLOCK_BACKEND,
        POLYLOCK_USAGE,
        POLYLOCK_INVALID_HANDLE,
        POLYLOCK_PANIC,
        POLYLOCK_CANCELLED,
    ];
    let name = known
        .into_iter()
        .find(|known| *known as i32 == status)
        .map_or("unknown\0", polylock_status::name);
    name.as_ptr().cast()
}

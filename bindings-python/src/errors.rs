//! polylock errors → the exception classes of `polylock.errors` (defined
//! in Python so they can have several bases, e.g. `InvalidArgument` is also
//! a `ValueError`).

use polylock::ErrorKind;
use pyo3::prelude::*;

/// The class name in `polylock.errors` for an error kind.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => "LockTimeout",
        ErrorKind::Lost => "LockLost",
        ErrorKind::NotHeld => "NotHeld",
        ErrorKind::LimitMismatch => "LimitMismatch",
        ErrorKind::Conflict => "Conflict",
        ErrorKind::Connection => "ConnectionError",
        ErrorKind::Auth => "AuthError",
        ErrorKind::InvalidArgument => "InvalidArgument",
        ErrorKind::Usage => "UsageError",
        ErrorKind::Cancelled => "Cancelled",
        _ => "BackendError",
    }
}

/// The Python exception for `error`, with its stable `code` attribute.
pub(crate) fn to_py(py: Python<'_>, error: polylock::Error) -> PyErr {
    let class = py
        .import("polylock.errors")
        .and_then(|module| module.getattr(class_name(error.kind())));
    match class {
        Ok(class) => match class.call1((error.to_string(), error.kind().code())) {
            Ok(instance) => PyErr::from_value(instance),
            Err(failure) => failure,
        },
        Err(failure) => failure,
    }
}

/// `Result<T, polylock::Error>` → `PyResult<T>`.
pub(crate) trait IntoPy<T> {
    /// Converts the error, if any, to its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for polylock::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|error| to_py(py, error))
    }
}

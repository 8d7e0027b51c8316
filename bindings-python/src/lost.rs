//! Lost callbacks into Python: run on polylock's notifier thread with the
//! GIL taken there; an exception goes to `sys.unraisablehook`, never
//! further.

use pyo3::prelude::*;

use crate::bridge::with_python;

/// What a lost callback receives.
#[pyclass(frozen, get_all, module = "polylock")]
pub(crate) struct LostEvent {
    /// The lock's name.
    name: String,
    /// The backend's id of the lost lease.
    holder: String,
    /// The lost lease's fencing token (None where the backend has none).
    fencing_token: Option<u64>,
    /// Why the lease was lost.
    reason: String,
}

#[pymethods]
impl LostEvent {
    fn __repr__(&self) -> String {
        format!(
            "LostEvent(name={:?}, fencing_token={:?}, reason={:?})",
            self.name, self.fencing_token, self.reason
        )
    }
}

/// Has `lease` call `callback(event)` once if it is lost.
pub(crate) fn watch(lease: &polylock::Lease, callback: Py<PyAny>) {
    lease.on_lost(move |event| {
        with_python(|py| {
            let event = LostEvent {
                name: event.name.clone(),
                holder: event.holder.clone(),
                fencing_token: event.fencing_token,
                reason: event.reason.clone(),
            };
            if let Err(error) = callback.call1(py, (event,)) {
                error.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    });
}

//! Lost callbacks into Python: run on polylock's notifier thread (never a
//! runtime worker) with the GIL taken there; an exception goes to
//! `sys.unraisablehook`, never further.
//!
//! A callback is held in a [`Callback`] cell shared by polylock's listener
//! and the Python object it was registered on (a `Lock` or a `Lease`),
//! which shows it to Python's garbage collector (`__traverse__`) and
//! empties it (`__clear__`, removal): a callback that refers back to its
//! lock is a cycle the collector can see and break.

use std::sync::{Arc, Mutex};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

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

impl From<&polylock::LostEvent> for LostEvent {
    fn from(event: &polylock::LostEvent) -> Self {
        LostEvent {
            name: event.name.clone(),
            holder: event.holder.clone(),
            fencing_token: event.fencing_token,
            reason: event.reason.clone(),
        }
    }
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

/// One registered Python callback; empty once removed or cleared.
///
/// Its mutex is only ever taken with the GIL held and never held while
/// waiting for the GIL, so the garbage collector's `__traverse__` can read it.
pub(crate) struct Callback(Mutex<Option<Py<PyAny>>>);

impl Callback {
    pub(crate) fn new(callback: Py<PyAny>) -> Arc<Self> {
        Arc::new(Callback(Mutex::new(Some(callback))))
    }

    /// Calls the callback with `event` (taking the GIL), unless it was
    /// removed or the interpreter is exiting.
    pub(crate) fn call(&self, event: &polylock::LostEvent) {
        with_python(|py| {
            let callback = {
                let held = self.0.lock().unwrap_or_else(|p| p.into_inner());
                held.as_ref().map(|callback| callback.clone_ref(py))
            };
            let Some(callback) = callback else { return };
            if let Err(error) = callback.call1(py, (LostEvent::from(event),)) {
                error.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    }

    /// Shows the callback to the garbage collector.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never contended while the collector runs (see the type's docs);
        // if it were, not visiting only keeps the callback alive longer.
        if let Ok(held) = self.0.try_lock() {
            if let Some(callback) = held.as_ref() {
                visit.call(callback)?;
            }
        }
        Ok(())
    }

    /// Empties the cell; the caller drops what it returns outside any lock
    /// (dropping a Python object can run arbitrary code).
    pub(crate) fn take(&self) -> Option<Py<PyAny>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Has `lease` call `callback` once if it is lost.
pub(crate) fn watch(lease: &polylock::Lease, callback: Arc<Callback>) {
    lease.on_lost(move |event| callback.call(event));
}

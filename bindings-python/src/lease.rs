//! `polylock.Lease`: a view of one lease of a `Lock`, with blocking and
//! `*_async` calls.
//!
//! The lease belongs to its lock's slot ([`polylock::LeaseSlot`]); a Lease
//! object is a view that keeps its Lock object (and so the slot and the
//! lease) alive. Dropping a Lease object releases nothing; the lease is
//! released by `release()` (here or on the lock), by leaving the lock's
//! `with` block, or in the background once the Lock object and every Lease
//! object of it are garbage-collected.

use std::sync::{Arc, Mutex};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use crate::bridge;
use crate::lock::Lock;
use crate::lost::{self, Callback};

/// A lease of a Lock (see the module docs).
#[pyclass(frozen, weakref, module = "polylock")]
pub(crate) struct Lease {
    /// The Lock whose slot keeps this lease.
    lock: Py<Lock>,
    pub(crate) view: Arc<polylock::Lease>,
    /// Callbacks registered with `on_lost` here, for the garbage collector.
    callbacks: Mutex<Vec<Arc<Callback>>>,
}

impl Lease {
    /// A Python view of `view`, a lease of `lock`'s slot.
    pub(crate) fn new(
        py: Python<'_>,
        lock: Py<Lock>,
        view: polylock::Lease,
    ) -> PyResult<Py<Lease>> {
        Py::new(
            py,
            Lease {
                lock,
                view: Arc::new(view),
                callbacks: Mutex::new(Vec::new()),
            },
        )
    }

    fn slot(&self) -> polylock::LeaseSlot {
        self.lock.get().slot.clone()
    }

    /// The slot and the view, for a release off the GIL.
    pub(crate) fn parts(&self) -> (polylock::LeaseSlot, Arc<polylock::Lease>) {
        (self.slot(), self.view.clone())
    }
}

/// Seconds as Python floats.
pub(crate) fn seconds(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64()
}

#[pymethods]
impl Lease {
    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.view.name()
    }

    /// The backend's id of this lease (Consul session id, …).
    #[getter]
    fn holder(&self) -> &str {
        self.view.holder()
    }

    /// Strictly increasing per name across grants; None where the backend
    /// has none.
    #[getter]
    fn fencing_token(&self) -> Option<u64> {
        self.view.fencing_token()
    }

    /// The granted TTL in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        seconds(self.view.ttl())
    }

    /// The lock's limit (1: mutex).
    #[getter]
    fn limit(&self) -> u32 {
        self.view.limit()
    }

    /// The holder value stored with the lease.
    #[getter]
    fn value(&self) -> &str {
        self.view.value()
    }

    /// True while the lease is held and proven.
    #[getter]
    fn is_held(&self) -> bool {
        self.view.is_held()
    }

    /// Seconds the lease is still proven held (0.0 once it is not).
    #[getter]
    fn time_to_expiration(&self) -> f64 {
        seconds(self.view.time_to_expiration())
    }

    /// True when a renewal is due (polylock renews on its own).
    #[getter]
    fn needs_renew(&self) -> bool {
        self.view.needs_renew()
    }

    /// Why the lease was lost, once it was.
    #[getter]
    fn loss_reason(&self) -> Option<String> {
        self.view.loss_reason()
    }

    /// Renews now. Raises LockLost if the lease was lost.
    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let view = self.view.clone();
        bridge::wait(py, async move { view.renew().await })
    }

    /// Releases (its lock holds no lease afterwards). Raises NotHeld when
    /// released already, LockLost when lost; after a ConnectionError the
    /// lease is still held: call again.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let (slot, view) = (self.slot(), self.view.clone());
        bridge::wait(py, async move { slot.release_lease(&view).await })
    }

    /// `renew()` as an awaitable.
    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        bridge::to_asyncio(
            py,
            async move { view.renew().await },
            |py, ()| Ok(py.None()),
        )
    }

    /// `release()` as an awaitable.
    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (slot, view) = (self.slot(), self.view.clone());
        bridge::to_asyncio(
            py,
            async move { slot.release_lease(&view).await },
            |py, ()| Ok(py.None()),
        )
    }

    /// Calls `callback(LostEvent)` once if this lease is lost (at once if
    /// it is already), from a background thread. Exceptions it raises go to
    /// `sys.unraisablehook`. (`Lock.on_lost` covers every lease of a lock,
    /// and can be removed.)
    fn on_lost(&self, callback: Py<PyAny>) {
        let callback = Callback::new(callback);
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(callback.clone());
        lost::watch(&self.view, callback);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lock)?;
        if let Ok(callbacks) = self.callbacks.try_lock() {
            for callback in callbacks.iter() {
                callback.traverse(&visit)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let callbacks =
            std::mem::take(&mut *self.callbacks.lock().unwrap_or_else(|p| p.into_inner()));
        let taken: Vec<_> = callbacks.iter().map(|callback| callback.take()).collect();
        drop(taken);
    }

    fn __repr__(&self) -> String {
        format!(
            "Lease(name={:?}, fencing_token={:?}, is_held={})",
            self.view.name(),
            self.view.fencing_token(),
            if self.view.is_held() { "True" } else { "False" }
        )
    }
}

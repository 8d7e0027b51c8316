//! `polylock.Lease`: one held lease, with blocking and `*_async` calls.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::bridge;
use crate::lost;

/// A held lease. Released by `release()`, by leaving its lock's `with`
/// block, or (in the background) when garbage-collected.
#[pyclass(frozen, module = "polylock")]
pub(crate) struct Lease {
    pub(crate) inner: Arc<polylock::Lease>,
}

impl Lease {
    pub(crate) fn new(lease: polylock::Lease) -> Self {
        Lease {
            inner: Arc::new(lease),
        }
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
        self.inner.name()
    }

    /// The backend's id of this lease (Consul session id, …).
    #[getter]
    fn holder(&self) -> &str {
        self.inner.holder()
    }

    /// Strictly increasing per name across grants; None where the backend
    /// has none.
    #[getter]
    fn fencing_token(&self) -> Option<u64> {
        self.inner.fencing_token()
    }

    /// The granted TTL in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        seconds(self.inner.ttl())
    }

    /// The lock's limit (1: mutex).
    #[getter]
    fn limit(&self) -> u32 {
        self.inner.limit()
    }

    /// The holder value stored with the lease.
    #[getter]
    fn value(&self) -> &str {
        self.inner.value()
    }

    /// True while the lease is held and proven.
    #[getter]
    fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// Seconds the lease is still proven held (0.0 once it is not).
    #[getter]
    fn time_to_expiration(&self) -> f64 {
        seconds(self.inner.time_to_expiration())
    }

    /// True when a renewal is due (polylock renews on its own).
    #[getter]
    fn needs_renew(&self) -> bool {
        self.inner.needs_renew()
    }

    /// Why the lease was lost, once it was.
    #[getter]
    fn loss_reason(&self) -> Option<String> {
        self.inner.loss_reason()
    }

    /// Renews now. Raises LockLost if the lease was lost.
    pub(crate) fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let lease = self.inner.clone();
        bridge::wait(py, async move { lease.renew().await })
    }

    /// Releases. Raises NotHeld when released already, LockLost when lost.
    pub(crate) fn release(&self, py: Python<'_>) -> PyResult<()> {
        let lease = self.inner.clone();
        bridge::wait(py, async move { lease.release().await })
    }

    /// `renew()` as an awaitable.
    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.inner.clone();
        bridge::to_asyncio(py, async move { lease.renew().await }, |py, ()| {
            Ok(py.None())
        })
    }

    /// `release()` as an awaitable.
    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.inner.clone();
        bridge::to_asyncio(py, async move { lease.release().await }, |py, ()| {
            Ok(py.None())
        })
    }

    /// Calls `callback(LostEvent)` once if the lease is lost (at once if it
    /// is already), from a background thread. Exceptions it raises go to
    /// `sys.unraisablehook`.
    fn on_lost(&self, callback: Py<PyAny>) {
        lost::watch(&self.inner, callback);
    }

    fn __repr__(&self) -> String {
        format!(
            "Lease(name={:?}, fencing_token={:?}, is_held={})",
            self.inner.name(),
            self.inner.fencing_token(),
            if self.inner.is_held() {
                "True"
            } else {
                "False"
            }
        )
    }
}

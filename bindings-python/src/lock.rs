//! `polylock.Lock`: a lock name with its options, holding at most one
//! lease at a time; a context manager.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use polylock::Wait;
use pyo3::prelude::*;

use crate::bridge;
use crate::errors::to_py;
use crate::lease::{seconds, Lease};
use crate::lost;

#[derive(Default)]
struct State {
    current: Option<Py<Lease>>,
    acquiring: bool,
    callbacks: Vec<Py<PyAny>>,
}

/// A lock handle from `Client.lock()`. `with lock as lease:` acquires
/// (waiting as long as it takes) and releases.
#[pyclass(frozen, module = "polylock")]
pub(crate) struct Lock {
    pub(crate) inner: polylock::Lock,
    state: Mutex<State>,
}

/// A timeout in seconds (None: forever) as a wait.
pub(crate) fn wait_for(timeout: Option<f64>) -> PyResult<Wait> {
    let Some(timeout) = timeout else {
        return Ok(Wait::Forever);
    };
    Duration::try_from_secs_f64(timeout)
        .map(Wait::For)
        .map_err(|_| {
            Python::attach(|py| {
                to_py(
                    py,
                    polylock::Error::InvalidArgument(format!(
                        "timeout must be a non-negative number of seconds or None, not {timeout}"
                    )),
                )
            })
        })
}

impl Lock {
    pub(crate) fn new(inner: polylock::Lock) -> Self {
        Lock {
            inner,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the right to acquire (one lease per lock object at a time).
    fn begin(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = self.state();
        let held = state
            .current
            .as_ref()
            .is_some_and(|lease| lease.get().inner.is_held());
        if state.acquiring || held {
            return Err(to_py(
                py,
                polylock::Error::Usage(format!(
                    "this Lock object for {:?} already holds or is acquiring a lease; release \
                     it, or make another Lock object (one per concurrent holder)",
                    self.inner.name()
                )),
            ));
        }
        state.acquiring = true;
        Ok(())
    }

    /// Ends an acquisition: stores the lease (with the lock's callbacks).
    fn finish(
        &self,
        py: Python<'_>,
        lease: Option<polylock::Lease>,
    ) -> PyResult<Option<Py<Lease>>> {
        let mut state = self.state();
        state.acquiring = false;
        let Some(lease) = lease else {
            return Ok(None);
        };
        for callback in &state.callbacks {
            lost::watch(&lease, callback.clone_ref(py));
        }
        let lease = Py::new(py, Lease::new(lease))?;
        state.current = Some(lease.clone_ref(py));
        Ok(Some(lease))
    }

    fn abort(&self) {
        self.state().acquiring = false;
    }

    fn acquire_blocking(&self, py: Python<'_>, wait: Wait) -> PyResult<Option<Py<Lease>>> {
        self.begin(py)?;
        let lock = self.inner.clone();
        match bridge::wait(py, async move { lock.acquire_with(wait).await }) {
            Ok(lease) => self.finish(py, lease),
            Err(error) => {
                self.abort();
                Err(error)
            }
        }
    }

    fn current(&self, py: Python<'_>) -> Option<Py<Lease>> {
        self.state()
            .current
            .as_ref()
            .map(|lease| lease.clone_ref(py))
    }

    fn held(&self, py: Python<'_>) -> PyResult<Py<Lease>> {
        self.current(py).ok_or_else(|| {
            to_py(
                py,
                polylock::Error::NotHeld {
                    name: self.inner.name().to_string(),
                    reason: "this Lock object holds no lease (never acquired, or released)".into(),
                },
            )
        })
    }
}

#[pymethods]
impl Lock {
    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The lock's limit (1: mutex).
    #[getter]
    fn limit(&self) -> u32 {
        self.inner.limit()
    }

    /// The TTL leases of this lock get, in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        seconds(self.inner.ttl())
    }

    /// Takes the lock, waiting at most `timeout` seconds (None: as long as
    /// it takes). Raises LockTimeout when the time runs out; Ctrl-C
    /// interrupts the wait. The GIL is released while waiting.
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<Lease>> {
        let wait = wait_for(timeout)?;
        self.acquire_blocking(py, wait)?.ok_or_else(|| {
            to_py(
                py,
                polylock::Error::Backend("the wait ended without a lease".into()),
            )
        })
    }

    /// Takes the lock if it is free now; None when it is busy.
    fn try_acquire(&self, py: Python<'_>) -> PyResult<Option<Py<Lease>>> {
        self.acquire_blocking(py, Wait::No)
    }

    /// `acquire()` as an awaitable.
    #[pyo3(signature = (timeout=None))]
    fn acquire_async<'py>(
        slf: Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::acquire_awaitable(slf, wait_for(timeout)?)
    }

    /// `try_acquire()` as an awaitable.
    fn try_acquire_async<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::acquire_awaitable(slf, Wait::No)
    }

    /// Releases the lease this lock holds. Raises NotHeld without one (or
    /// when released already), LockLost when it was lost.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let lease = self.held(py)?;
        let outcome = lease.get().release(py);
        self.state().current = None;
        outcome
    }

    /// `release()` as an awaitable.
    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.held(py)?;
        self.state().current = None;
        let inner = lease.get().inner.clone();
        bridge::to_asyncio(py, async move { inner.release().await }, |py, ()| {
            Ok(py.None())
        })
    }

    /// Renews the held lease now.
    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        self.held(py)?.get().renew(py)
    }

    /// `renew()` as an awaitable.
    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.held(py)?.get().inner.clone();
        bridge::to_asyncio(py, async move { inner.renew().await }, |py, ()| {
            Ok(py.None())
        })
    }

    /// The current lease, if any (it may have been lost since).
    #[getter]
    fn lease(&self, py: Python<'_>) -> Option<Py<Lease>> {
        self.current(py)
    }

    /// The current lease's fencing token (None without one).
    #[getter]
    fn fencing_token(&self, py: Python<'_>) -> Option<u64> {
        self.current(py)
            .and_then(|lease| lease.get().inner.fencing_token())
    }

    /// True while this lock holds a proven lease.
    #[getter]
    fn is_held(&self, py: Python<'_>) -> bool {
        self.current(py)
            .is_some_and(|lease| lease.get().inner.is_held())
    }

    /// Seconds the current lease is still proven held (0.0 without one).
    #[getter]
    fn time_to_expiration(&self, py: Python<'_>) -> f64 {
        self.current(py)
            .map_or(0.0, |lease| seconds(lease.get().inner.time_to_expiration()))
    }

    /// Calls `callback(LostEvent)` when a lease of this lock (the current
    /// one or a later one) is lost, once per lease, from a background
    /// thread. Exceptions it raises go to `sys.unraisablehook`.
    fn on_lost(&self, py: Python<'_>, callback: Py<PyAny>) {
        let mut state = self.state();
        if let Some(lease) = &state.current {
            lost::watch(&lease.get().inner, callback.clone_ref(py));
        }
        state.callbacks.push(callback);
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<Lease>> {
        self.acquire(py, None)
    }

    /// Releases; a lease lost during the block raises LockLost (unless the
    /// block is raising already).
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match self.release(py) {
            Err(error) if exc_type.is_none() => Err(error),
            _ => Ok(false),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Lock(name={:?}, limit={}, is_held={})",
            self.inner.name(),
            self.inner.limit(),
            if self.is_held(py) { "True" } else { "False" }
        )
    }
}

impl Lock {
    fn acquire_awaitable<'py>(slf: Bound<'py, Self>, wait: Wait) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        slf.get().begin(py)?;
        let lock = slf.get().inner.clone();
        let owner = slf.clone().unbind();
        let abort_owner = slf.clone().unbind();
        let future = bridge::to_asyncio(
            py,
            async move { lock.acquire_with(wait).await },
            move |py, lease| {
                let lease = owner.get().finish(py, lease)?;
                Ok(lease.map_or_else(|| py.None(), |lease| lease.into_any()))
            },
        );
        match future {
            Ok(future) => {
                // A cancelled or failed wait must free the lock object again.
                let reset = bridge::ResetOnFailure::new(abort_owner);
                future.call_method1("add_done_callback", (reset,))?;
                Ok(future)
            }
            Err(error) => {
                slf.get().abort();
                Err(error)
            }
        }
    }

    /// Frees the lock object after an acquisition that did not finish.
    pub(crate) fn reset_if_acquiring(&self) {
        self.abort();
    }
}

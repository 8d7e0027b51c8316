//! `polylock.Lock`: a lock name with its options, holding at most one
//! lease at a time (a [`polylock::LeaseSlot`]); a context manager. Its
//! acquisitions are in [`crate::acquire`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use polylock::{LeaseSlot, ListenerId, Wait};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use crate::acquire;
use crate::bridge;
use crate::errors::to_py;
use crate::lease::{seconds, Lease};
use crate::lost::Callback;

/// One `on_lost` registration: its handle (what Python sees), the slot's
/// listener id, and the callback.
struct Registration {
    handle: u64,
    id: ListenerId,
    callback: Arc<Callback>,
}

/// The lost listeners of a Lock.
#[derive(Default)]
struct Listeners {
    next_handle: u64,
    registered: Vec<Registration>,
}

/// A lock handle from `Client.lock()`. `with lock as lease:` acquires
/// (waiting as long as it takes) and releases.
#[pyclass(frozen, weakref, module = "polylock")]
pub(crate) struct Lock {
    pub(crate) slot: LeaseSlot,
    /// Only taken with the GIL held, never across a wait for it.
    listeners: Mutex<Listeners>,
    /// The number of the last acquisition started (with the GIL held).
    started: AtomicU64,
}

/// A timeout in seconds (None: forever) as a wait.
pub(crate) fn wait_for(py: Python<'_>, timeout: Option<f64>) -> PyResult<Wait> {
    let Some(timeout) = timeout else {
        return Ok(Wait::Forever);
    };
    Duration::try_from_secs_f64(timeout)
        .map(Wait::For)
        .map_err(|_| {
            to_py(
                py,
                polylock::Error::InvalidArgument(format!(
                    "timeout must be a non-negative number of seconds or None, not {timeout}"
                )),
            )
        })
}

impl Lock {
    pub(crate) fn new(inner: polylock::Lock) -> Self {
        Lock {
            slot: LeaseSlot::new(inner),
            listeners: Mutex::default(),
            started: AtomicU64::new(0),
        }
    }

    /// Numbers an acquisition just started (call with the GIL held, right
    /// after `start_acquire`), for [`cancel_attempt`](Self::cancel_attempt).
    pub(crate) fn number_attempt(&self) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Cancels acquisition `attempt` if it is still pending; never a later
    /// one (acquisitions start with the GIL held, which the caller holds).
    pub(crate) fn cancel_attempt(&self, attempt: u64) -> bool {
        self.started.load(Ordering::SeqCst) == attempt && self.slot.cancel()
    }

    fn listeners(&self) -> MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(slf: &Bound<'_, Self>) -> PyResult<Option<Py<Lease>>> {
        match slf.get().slot.lease() {
            Some(view) => Lease::new(slf.py(), slf.clone().unbind(), view).map(Some),
            None => Ok(None),
        }
    }
}

#[pymethods]
impl Lock {
    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.slot.lock().name()
    }

    /// The lock's limit (1: mutex).
    #[getter]
    fn limit(&self) -> u32 {
        self.slot.lock().limit()
    }

    /// The TTL leases of this lock get, in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        seconds(self.slot.lock().ttl())
    }

    /// Takes the lock, waiting at most `timeout` seconds (None: as long as
    /// it takes). Raises LockTimeout when the time runs out; Ctrl-C
    /// interrupts the wait (a lease granted at that moment is released).
    /// The GIL is released while waiting. `on_wait_started()` is called
    /// once, in this thread, if the lock is busy and the wait begins; an
    /// exception it raises cancels the acquisition and is raised here.
    #[pyo3(signature = (timeout=None, *, on_wait_started=None))]
    fn acquire(
        slf: &Bound<'_, Self>,
        timeout: Option<f64>,
        on_wait_started: Option<Py<PyAny>>,
    ) -> PyResult<Py<Lease>> {
        let py = slf.py();
        let wait = wait_for(py, timeout)?;
        acquire::blocking(slf, wait, on_wait_started)?.ok_or_else(|| {
            to_py(
                py,
                polylock::Error::Backend("the wait ended without a lease".into()),
            )
        })
    }

    /// Takes the lock if it is free now; None when it is busy.
    fn try_acquire(slf: &Bound<'_, Self>) -> PyResult<Option<Py<Lease>>> {
        acquire::blocking(slf, Wait::No, None)
    }

    /// `acquire()` as a coroutine. Cancelling it cancels the wait; a lease
    /// granted at that moment is released before the cancellation goes on.
    /// `on_wait_started()` is scheduled on the event loop if the wait begins
    /// (an exception it raises goes to the loop's exception handler).
    #[pyo3(signature = (timeout=None, *, on_wait_started=None))]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
        on_wait_started: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        wait_for(slf.py(), timeout)?;
        acquire::coroutine(slf, timeout, false, on_wait_started)
    }

    /// `try_acquire()` as a coroutine.
    fn try_acquire_async<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        acquire::coroutine(slf, None, true, None)
    }

    /// Starts an acquisition: an asyncio future of its outcome and the
    /// acquisition's number (for `polylock._bridge.acquire`).
    #[pyo3(signature = (timeout, try_only, on_wait_started))]
    fn _acquire_future<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
        try_only: bool,
        on_wait_started: Option<Py<PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, u64)> {
        let wait = if try_only {
            Wait::No
        } else {
            wait_for(slf.py(), timeout)?
        };
        acquire::future(slf, wait, on_wait_started)
    }

    /// Cancels acquisition number `attempt` if it is still pending.
    fn _cancel_attempt(&self, attempt: u64) -> bool {
        self.cancel_attempt(attempt)
    }

    /// Cancels this lock's pending acquisition (from another thread or
    /// task): it raises polylock.Cancelled (an attempt already sent to the
    /// backend finishes first; a lease it brings back is released). False
    /// when none was pending.
    fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// Releases the lease this lock holds. Raises NotHeld without one (or
    /// when released already), LockLost when it was lost. After a
    /// ConnectionError (the backend unreachable) the lease is still held:
    /// call again.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let slot = self.slot.clone();
        bridge::wait(py, async move { slot.release().await })
    }

    /// `release()` as an awaitable.
    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slot.clone();
        bridge::to_asyncio(py, async move { slot.release().await }, |py, ()| {
            Ok(py.None())
        })
    }

    /// Renews the held lease now.
    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let slot = self.slot.clone();
        bridge::wait(py, async move { slot.renew().await })
    }

    /// `renew()` as an awaitable.
    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slot.clone();
        bridge::to_asyncio(
            py,
            async move { slot.renew().await },
            |py, ()| Ok(py.None()),
        )
    }

    /// The current lease, if any (it may have been lost since); a new view
    /// object each time.
    #[getter]
    fn lease(slf: &Bound<'_, Self>) -> PyResult<Option<Py<Lease>>> {
        Lock::current(slf)
    }

    /// The current lease's fencing token (None without one).
    #[getter]
    fn fencing_token(&self) -> Option<u64> {
        self.slot.lease().and_then(|lease| lease.fencing_token())
    }

    /// True while this lock holds a proven lease.
    #[getter]
    fn is_held(&self) -> bool {
        self.slot.lease().is_some_and(|lease| lease.is_held())
    }

    /// Seconds the current lease is still proven held (0.0 without one).
    #[getter]
    fn time_to_expiration(&self) -> f64 {
        self.slot
            .lease()
            .map_or(0.0, |lease| seconds(lease.time_to_expiration()))
    }

    /// Calls `callback(LostEvent)` when a lease of this lock (the current
    /// one or a later one) is lost, once per lease, from a background
    /// thread. Exceptions it raises go to `sys.unraisablehook`. Returns a
    /// handle for `remove_lost_listener`.
    fn on_lost(&self, callback: Py<PyAny>) -> u64 {
        let callback = Callback::new(callback);
        let mut listeners = self.listeners();
        let listener = callback.clone();
        let id = self
            .slot
            .on_lost(Arc::new(move |event| listener.call(event)));
        listeners.next_handle += 1;
        let handle = listeners.next_handle;
        listeners.registered.push(Registration {
            handle,
            id,
            callback,
        });
        handle
    }

    /// Removes the callback `on_lost` returned `handle` for; True if it was
    /// registered. A call of it already running finishes.
    fn remove_lost_listener(&self, handle: u64) -> bool {
        let removed = {
            let mut listeners = self.listeners();
            let at = listeners
                .registered
                .iter()
                .position(|registration| registration.handle == handle);
            at.map(|at| listeners.registered.remove(at))
        };
        let Some(registration) = removed else {
            return false;
        };
        self.slot.remove_lost_listener(registration.id);
        drop(registration.callback.take());
        true
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Lease>> {
        Lock::acquire(slf, None, None)
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

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(listeners) = self.listeners.try_lock() {
            for registration in &listeners.registered {
                registration.callback.traverse(&visit)?;
            }
        }
        Ok(())
    }

    /// Drops the lost callbacks (breaking cycles through them).
    fn __clear__(&self) {
        let registered = std::mem::take(&mut self.listeners().registered);
        for registration in &registered {
            self.slot.remove_lost_listener(registration.id);
        }
        let callbacks: Vec<_> = registered
            .iter()
            .map(|registration| registration.callback.take())
            .collect();
        drop(callbacks);
    }

    fn __repr__(&self) -> String {
        format!(
            "Lock(name={:?}, limit={}, is_held={})",
            self.name(),
            self.limit(),
            if self.is_held() { "True" } else { "False" }
        )
    }
}

//! Running polylock's futures for Python: blocking calls with the GIL
//! released (a long wait still answers Ctrl-C), and asyncio futures settled
//! from polylock's runtime through `loop.call_soon_threadsafe`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::task::AbortHandle;

use crate::errors::IntoPy;

/// Set at interpreter exit: from then on polylock's threads do not enter
/// Python (no lost callbacks, no asyncio settling).
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// How often a blocking wait looks for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Marks the interpreter as exiting (called from an `atexit` hook).
#[pyfunction]
pub(crate) fn _shutdown() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// Runs `f` with the GIL held, unless the interpreter is exiting.
pub(crate) fn with_python(f: impl FnOnce(Python<'_>)) {
    if !SHUTTING_DOWN.load(Ordering::SeqCst) {
        Python::attach(f);
    }
}

/// Runs `fut` on polylock's runtime and waits for it with the GIL
/// released. Every [`SIGNAL_CHECK`] the wait runs Python's signal handlers;
/// if one raises (KeyboardInterrupt), `fut` is cancelled and that error
/// returned.
pub(crate) fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = polylock::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let task = polylock::spawn(async move {
        let _ = tx.send(fut.await);
    });
    let outcome = py.detach(move || loop {
        match rx.recv_timeout(SIGNAL_CHECK) {
            Ok(outcome) => return Ok(outcome),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok(Err(polylock::Error::Backend(
                    "a polylock task ended early".into(),
                )))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(signal) = Python::attach(|py| py.check_signals()) {
                    task.abort();
                    return Err(signal);
                }
            }
        }
    })?;
    outcome.py_err(py)
}

/// Cancels a polylock task when its asyncio future is cancelled.
#[pyclass(frozen)]
pub(crate) struct CancelOnDone {
    task: AbortHandle,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}

/// An asyncio future (of the running loop) settled with `fut`'s outcome,
/// converted by `convert` with the GIL held. Cancelling the asyncio future
/// cancels `fut`.
pub(crate) fn to_asyncio<'py, T, F, C>(
    py: Python<'py>,
    fut: F,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = polylock::Result<T>> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let settle = py.import("polylock._bridge")?.getattr("settle")?.unbind();
    let (event_loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    let task = polylock::spawn(async move {
        let outcome = fut.await;
        with_python(|py| {
            let (ok, value) = match outcome.py_err(py).and_then(|value| convert(py, value)) {
                Ok(value) => (true, value),
                Err(error) => (false, error.into_value(py).into_any()),
            };
            // A closed loop has nobody waiting: nothing to settle.
            let _ = event_loop_ref.call_method1(
                py,
                "call_soon_threadsafe",
                (settle, future_ref, ok, value),
            );
        });
    });
    let cancel = CancelOnDone {
        task: task.abort_handle(),
    };
    future.call_method1("add_done_callback", (cancel,))?;
    Ok(future)
}

/// Frees a `Lock` for the next acquisition when an awaitable acquisition
/// ends without finishing (cancelled, or failed).
#[pyclass(frozen)]
pub(crate) struct ResetOnFailure {
    lock: Py<crate::lock::Lock>,
}

impl ResetOnFailure {
    pub(crate) fn new(lock: Py<crate::lock::Lock>) -> Self {
        ResetOnFailure { lock }
    }
}

#[pymethods]
impl ResetOnFailure {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let failed = future.call_method0("cancelled")?.is_truthy()?
            || !future.call_method0("exception")?.is_none();
        if failed {
            self.lock.get().reset_if_acquiring();
        }
        Ok(())
    }
}

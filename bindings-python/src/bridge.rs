//! Running polylock's futures for Python: blocking calls with the GIL
//! released (a long wait still answers Ctrl-C), and asyncio futures settled
//! through the delivery thread ([`crate::delivery`]) and
//! `loop.call_soon_threadsafe`. Nothing here enters Python on a polylock
//! runtime worker.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::delivery;
use crate::errors::IntoPy;

/// Set at interpreter exit: from then on no thread of polylock's enters
/// Python (no lost callbacks, no asyncio settling).
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// How often a blocking wait looks for signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Marks the interpreter as exiting (called from an `atexit` hook).
#[pyfunction]
pub(crate) fn _shutdown() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// Runs `f` with the GIL held, unless the interpreter is exiting (or
/// cannot be entered). Only for threads that may wait for the GIL: the
/// caller's own, the delivery thread, polylock's notifier thread.
pub(crate) fn with_python(f: impl FnOnce(Python<'_>)) {
    if !SHUTTING_DOWN.load(Ordering::SeqCst) {
        let _ = Python::try_attach(f);
    }
}

/// Waits (GIL released) for the first message on `rx`, running Python's
/// signal handlers every [`SIGNAL_CHECK`]; the error they raise
/// (KeyboardInterrupt) ends the wait. `Ok(None)`: the sender went away, or
/// `until` passed. Hands `rx` back for more.
pub(crate) fn recv_or_signal<T: Send>(
    py: Python<'_>,
    rx: mpsc::Receiver<T>,
    until: Option<Instant>,
) -> (PyResult<Option<T>>, mpsc::Receiver<T>) {
    py.detach(move || {
        let outcome = loop {
            match rx.recv_timeout(SIGNAL_CHECK) {
                Ok(message) => break Ok(Some(message)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(None),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(signal) = Python::attach(|py| py.check_signals()) {
                        break Err(signal);
                    }
                    if until.is_some_and(|until| Instant::now() >= until) {
                        break Ok(None);
                    }
                }
            }
        };
        (outcome, rx)
    })
}

/// What a wait reports when its task ended without an outcome.
fn ended_early() -> polylock::Error {
    polylock::Error::Backend("a polylock task ended early".into())
}

/// Runs `fut` on polylock's runtime and waits for it with the GIL
/// released; Ctrl-C ends the wait with KeyboardInterrupt while `fut` runs
/// on to its end in the background (a release or renewal is never cut in
/// the middle).
pub(crate) fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = polylock::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    polylock::spawn(async move {
        // Bound first: `fut` (and what it holds) is dropped before the
        // waiter hears, so it sees everything `fut` let go of gone.
        let outcome = fut.await;
        let _ = tx.send(outcome);
    });
    recv_or_signal(py, rx, None)
        .0?
        .unwrap_or_else(|| Err(ended_early()))
        .py_err(py)
}

/// [`wait`] for futures that may stop anywhere (reading an event stream):
/// Ctrl-C cancels `fut`.
pub(crate) fn wait_abortable<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = polylock::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let task = polylock::spawn(async move {
        let outcome = fut.await;
        let _ = tx.send(outcome);
    });
    match recv_or_signal(py, rx, None).0 {
        Ok(outcome) => outcome.unwrap_or_else(|| Err(ended_early())).py_err(py),
        Err(signal) => {
            task.abort();
            Err(signal)
        }
    }
}

/// `polylock._bridge.settle`, looked up once.
static SETTLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An asyncio future of the running loop, to settle from any thread.
pub(crate) struct AsyncTarget {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
}

impl AsyncTarget {
    /// A new future of the running event loop (a RuntimeError without one).
    pub(crate) fn new(py: Python<'_>) -> PyResult<(Self, Bound<'_, PyAny>)> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let target = AsyncTarget {
            event_loop: event_loop.unbind(),
            future: future.clone().unbind(),
        };
        Ok((target, future))
    }

    /// The same loop, for a callback scheduled on it.
    pub(crate) fn event_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// Sets the future's outcome on its loop (unless it is done by then:
    /// `polylock._bridge.settle`). `Err(value)` when the loop is closed:
    /// nobody will see the value, which is handed back.
    pub(crate) fn settle(
        self,
        py: Python<'_>,
        outcome: PyResult<Py<PyAny>>,
    ) -> Result<(), Option<Py<PyAny>>> {
        let (ok, value) = match outcome {
            Ok(value) => (true, value),
            Err(error) => (false, error.into_value(py).into_any()),
        };
        let settlement = Settlement(Mutex::new(Some((self.future, ok, value))));
        let Ok(settlement) = Py::new(py, settlement) else {
            return Err(None);
        };
        let scheduled =
            self.event_loop
                .call_method1(py, "call_soon_threadsafe", (settlement.clone_ref(py),));
        match scheduled {
            Ok(_) => Ok(()),
            Err(_) => Err(settlement.get().take().map(|(_, _, value)| value)),
        }
    }
}

/// One future's outcome on its way to the loop, taken out when it arrives:
/// once the future has it, the delivery thread (still finishing its call
/// of `call_soon_threadsafe`) holds no reference to the outcome, so a
/// caller done with it sees it freed.
#[pyclass(frozen, module = "polylock")]
struct Settlement(Mutex<Option<Outcome>>);

/// A future, whether it succeeded, and its value or exception.
type Outcome = (Py<PyAny>, bool, Py<PyAny>);

impl Settlement {
    fn take(&self) -> Option<Outcome> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl Settlement {
    /// On the loop: `polylock._bridge.settle(future, ok, value)`.
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let Some((future, ok, value)) = self.take() else {
            return Ok(());
        };
        SETTLE
            .import(py, "polylock._bridge", "settle")?
            .call1((future, ok, value))?;
        Ok(())
    }
}

/// Schedules `callback()` on `event_loop` (from the delivery thread); an
/// exception it raises is the loop's to report.
pub(crate) fn call_soon(py: Python<'_>, event_loop: &Py<PyAny>, callback: &Py<PyAny>) {
    let _ = event_loop.call_method1(py, "call_soon_threadsafe", (callback.clone_ref(py),));
}

/// An asyncio future (of the running loop) settled with `fut`'s outcome,
/// converted by `convert` on the delivery thread. Cancelling the asyncio
/// future stops only the waiting: `fut` runs to its end (a release or a
/// renewal is never cut in the middle).
pub(crate) fn to_asyncio<'py, T, F, C>(
    py: Python<'py>,
    fut: F,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = polylock::Result<T>> + Send + 'static,
    T: Send + 'static,
    C: for<'a> FnOnce(Python<'a>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let (target, future) = AsyncTarget::new(py)?;
    polylock::spawn(async move {
        let outcome = fut.await;
        delivery::send(Box::new(move |py| {
            let outcome = outcome.py_err(py).and_then(|value| convert(py, value));
            let _ = target.settle(py, outcome);
        }));
    });
    Ok(future)
}

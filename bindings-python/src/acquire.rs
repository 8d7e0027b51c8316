//! A `Lock`'s acquisitions, through its slot's `start_acquire`: blocking
//! (the calling thread waits on a channel with the GIL released, answering
//! Ctrl-C) and asyncio (the outcome is handed to the delivery thread, which
//! settles an asyncio future; `polylock._bridge.acquire` wraps it in a
//! coroutine that cancels the slot's acquisition when it is cancelled).
//!
//! The slot calls `done` on a runtime worker, so `done` only sends: to the
//! waiting thread's channel, or to the delivery thread.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use polylock::{AcquireHooks, Wait};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::bridge::{self, AsyncTarget};
use crate::delivery;
use crate::errors::IntoPy;
use crate::lease::Lease;
use crate::lock::Lock;

/// What a blocking acquisition's waiting thread hears.
enum Progress {
    WaitStarted,
    Done(polylock::Result<Option<polylock::Lease>>),
}

/// How long an interrupted acquisition is waited for (its attempt in
/// flight, if any, ends first).
const LATE_OUTCOME: Duration = Duration::from_secs(10);

/// A one-shot wait-started hook that tells the waiting thread on `tx`.
fn send_hook(tx: &mpsc::Sender<Progress>) -> Box<dyn FnOnce() + Send + 'static> {
    let tx = tx.clone();
    Box::new(move || {
        let _ = tx.send(Progress::WaitStarted);
    })
}

/// Acquires as `wait` allows, blocking this thread with the GIL released.
/// `on_wait_started` runs in this thread when the wait begins. On Ctrl-C
/// (or an exception from `on_wait_started`, a KeyboardInterrupt that hit it
/// included) the acquisition is cancelled, and one that had ended with a
/// lease already has it released, before the exception is raised.
pub(crate) fn blocking(
    lock: &Bound<'_, Lock>,
    wait: Wait,
    on_wait_started: Option<Py<PyAny>>,
) -> PyResult<Option<Py<Lease>>> {
    let py = lock.py();
    let slot = &lock.get().slot;
    let (tx, mut rx) = mpsc::channel();
    let hooks = AcquireHooks {
        wait_started: on_wait_started.as_ref().map(|_| send_hook(&tx)),
    };
    slot.start_acquire(wait, hooks, move |outcome| {
        let _ = tx.send(Progress::Done(outcome));
    })
    .py_err(py)?;
    let attempt = lock.get().number_attempt();
    let outcome = loop {
        let (heard, back) = bridge::recv_or_signal(py, rx, None);
        rx = back;
        let raised = match heard {
            Ok(Some(Progress::WaitStarted)) => match &on_wait_started {
                Some(hook) => hook.call0(py).err(),
                None => None,
            },
            Ok(Some(Progress::Done(outcome))) => break outcome,
            Ok(None) => {
                break Err(polylock::Error::Backend(
                    "the acquisition ended without an outcome".into(),
                ))
            }
            Err(signal) => Some(signal),
        };
        if let Some(error) = raised {
            lock.get().cancel_attempt(attempt);
            end_interrupted(py, lock, rx);
            return Err(error);
        }
    };
    match outcome.py_err(py)? {
        Some(view) => Lease::new(py, lock.clone().unbind(), view).map(Some),
        None => Ok(None),
    }
}

/// After an interrupted wait (the acquisition cancelled, unless it had
/// ended already): waits for its end, so that nothing of it goes on behind
/// the caller's back, and releases a lease it brought if it ended with one
/// before the cancel. Bounded, and a second Ctrl-C stops the waiting (the
/// rest goes on in the background).
fn end_interrupted(py: Python<'_>, lock: &Bound<'_, Lock>, mut rx: mpsc::Receiver<Progress>) {
    let deadline = Instant::now() + LATE_OUTCOME;
    let granted = loop {
        let (heard, back) = bridge::recv_or_signal(py, rx, Some(deadline));
        rx = back;
        match heard {
            Ok(Some(Progress::WaitStarted)) => continue,
            Ok(Some(Progress::Done(Ok(Some(view))))) => break Some(view),
            _ => break None,
        }
    };
    if let Some(view) = granted {
        let slot = lock.get().slot.clone();
        let _ = bridge::wait(py, async move { slot.release_lease(&view).await });
    }
}

/// Starts acquiring as `wait` allows; an asyncio future (of the running
/// loop) of the Lease, None (busy, for a try), or the error, with the
/// acquisition's number ([`Lock::cancel_attempt`]). The outcome
/// reaches the loop through the delivery thread; `on_wait_started` is
/// scheduled on the loop when the wait begins.
pub(crate) fn future<'py>(
    lock: &Bound<'py, Lock>,
    wait: Wait,
    on_wait_started: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, u64)> {
    let py = lock.py();
    let (target, future) = AsyncTarget::new(py)?;
    let hooks = AcquireHooks {
        wait_started: on_wait_started.map(|hook| {
            let event_loop = target.event_loop(py);
            Box::new(move || {
                delivery::send(Box::new(move |py| {
                    bridge::call_soon(py, &event_loop, &hook)
                }))
            }) as Box<dyn FnOnce() + Send + 'static>
        }),
    };
    let owner = lock.clone().unbind();
    lock.get()
        .slot
        .start_acquire(wait, hooks, move |outcome| {
            delivery::send(Box::new(move |py| settle(py, target, owner, outcome)));
        })
        .py_err(py)?;
    Ok((future, lock.get().number_attempt()))
}

/// On the delivery thread: the outcome as Python objects, to the loop. A
/// lease nobody can receive (the loop closed) is released.
fn settle(
    py: Python<'_>,
    target: AsyncTarget,
    lock: Py<Lock>,
    outcome: polylock::Result<Option<polylock::Lease>>,
) {
    let value = match outcome.py_err(py) {
        Ok(Some(view)) => Lease::new(py, lock, view).map(Py::into_any),
        Ok(None) => Ok(py.None()),
        Err(error) => Err(error),
    };
    if let Err(Some(unseen)) = target.settle(py, value) {
        if let Ok(lease) = unseen.bind(py).cast::<Lease>() {
            let (slot, view) = lease.get().parts();
            polylock::spawn(async move { slot.release_lease(&view).await });
        }
    }
}

/// `polylock._bridge.acquire`, looked up once.
static ACQUIRE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The coroutine `Lock.acquire_async` / `try_acquire_async` return:
/// `polylock._bridge.acquire(lock, timeout, try_only, on_wait_started)`.
pub(crate) fn coroutine<'py>(
    lock: &Bound<'py, Lock>,
    timeout: Option<f64>,
    try_only: bool,
    on_wait_started: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = lock.py();
    ACQUIRE.import(py, "polylock._bridge", "acquire")?.call1((
        lock,
        timeout,
        try_only,
        on_wait_started,
    ))
}

//! The waiting policy's frame, once for every backend: the deadline of an
//! acquire call, its observer events and its outcome. How a backend waits
//! is its [`crate::backend::AcquirePolicy`] if it has one (LDLM's server
//! waits, Consul's and MongoDB's shared queries), else the default
//! [`crate::backend::try_then_wait`]: try, and while the lock is busy, wait
//! for the backend to report a change (never a fixed-period poll where the
//! backend can notify).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::{AcquireRequest, Acquisition, Backend, Grant, WaitSignals};
use crate::error::{Error, Result};
use crate::events::{Event, Observers};

/// How long an acquire call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait: one attempt.
    No,
    /// Wait at most this long.
    For(Duration),
    /// Wait until the lock is acquired or an error occurs.
    Forever,
}

/// Dropped by the caller when it stops waiting (its future was dropped).
pub(crate) type CallerGone = oneshot::Receiver<()>;

/// Run once when an acquire call starts waiting (the lock was busy), on the
/// runtime; for bindings whose callers must know a wait is parked.
pub(crate) type WaitStartedHook = Box<dyn FnOnce() + Send + 'static>;

/// Acquires `request` on `backend`, waiting as `wait` allows, and returns the
/// grant with the moment its proof was sent (the basis of the lease's
/// deadline). `Ok(None)` means the lock was busy and `wait` was
/// [`Wait::No`], or the caller went away while waiting.
pub(crate) async fn acquire(
    backend: &dyn Backend,
    observers: &Observers,
    request: &AcquireRequest,
    wait: Wait,
    caller_gone: CallerGone,
    mut wait_started: Option<WaitStartedHook>,
) -> Result<Option<(Grant, Instant)>> {
    let started = Instant::now();
    let until = match wait {
        Wait::No => Some(started),
        Wait::For(timeout) => Some(started + timeout),
        Wait::Forever => None,
    };
    let announce = || {
        observers.emit(|| Event::WaitStarted {
            name: request.name.clone(),
        });
        if let Some(hook) = wait_started.take() {
            if catch_unwind(AssertUnwindSafe(hook)).is_err() {
                tracing::error!(name = %request.name, "a wait-started hook panicked; ignored");
            }
        }
    };
    let mut signals = WaitSignals::new(announce, caller_gone);
    let outcome = match backend.acquire(request, until, &mut signals).await {
        Ok(Acquisition::Granted { grant, proven_from }) => Ok(Some((grant, proven_from))),
        Ok(Acquisition::CallerGone) => Ok(None),
        Ok(Acquisition::Busy) => match wait {
            Wait::No => Ok(None),
            _ => Err(Error::Timeout {
                name: request.name.clone(),
                waited: started.elapsed(),
            }),
        },
        Err(error) => Err(error),
    };
    if signals.is_waiting() {
        observers.emit(|| Event::WaitEnded {
            name: request.name.clone(),
            acquired: matches!(outcome, Ok(Some(_))),
            waited: started.elapsed(),
        });
    }
    outcome
}

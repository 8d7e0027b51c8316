//! The waiting policy, once for every backend: try, and while the lock is
//! busy, wait for the backend to report a change (never a fixed-period poll
//! where the backend can notify), until the caller's deadline.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::{AcquireRequest, Attempt, Backend, Grant};
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

/// Acquires `request` on `backend`, waiting as `wait` allows, and returns the
/// grant with the moment its successful attempt was sent (the basis of the
/// lease's deadline). `Ok(None)` means the lock was busy and `wait` was
/// [`Wait::No`], or the caller went away while waiting. An attempt in flight
/// is never interrupted, so a grant is never half-taken.
pub(crate) async fn acquire(
    backend: &dyn Backend,
    observers: &Observers,
    request: &AcquireRequest,
    wait: Wait,
    mut caller_gone: CallerGone,
) -> Result<Option<(Grant, Instant)>> {
    let started = Instant::now();
    let until = match wait {
        Wait::No => Some(started),
        Wait::For(timeout) => Some(started + timeout),
        Wait::Forever => None,
    };
    let mut waiting = false;
    let outcome = loop {
        let sent = Instant::now();
        let marker = match backend.try_acquire(request).await {
            Ok(Attempt::Acquired(grant)) => break Ok(Some((grant, sent))),
            Ok(Attempt::Busy(marker)) => marker,
            Err(error) => break Err(error),
        };
        if until.is_some_and(|until| Instant::now() >= until) {
            break match wait {
                Wait::No => Ok(None),
                _ => Err(Error::Timeout {
                    name: request.name.clone(),
                    waited: started.elapsed(),
                }),
            };
        }
        if !waiting {
            waiting = true;
            observers.emit(|| Event::WaitStarted {
                name: request.name.clone(),
            });
        }
        tokio::select! {
            changed = backend.wait_for_change(request, marker, until) => {
                if let Err(error) = changed {
                    break Err(error);
                }
            }
            _ = &mut caller_gone => break Ok(None),
        }
    };
    if waiting {
        observers.emit(|| Event::WaitEnded {
            name: request.name.clone(),
            acquired: matches!(outcome, Ok(Some(_))),
            waited: started.elapsed(),
        });
    }
    outcome
}

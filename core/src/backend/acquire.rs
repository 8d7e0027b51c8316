//! How a backend takes a lock for one acquisition call: its own
//! [`AcquirePolicy`] if it offers one, else the default [`try_then_wait`]
//! over its parts; what the call is lent ([`WaitSignals`]) and how it ends
//! ([`Acquisition`]).

use async_trait::async_trait;
use tokio::time::Instant;

use super::{AcquireRequest, Attempt, Backend, Grant};
use crate::error::Result;

/// A backend's own acquisition policy, handed whole calls: LDLM with one
/// waiting call on the server, Consul and MongoDB with waiters parked on a
/// shared query, one attempt per freed slot. A backend without one gets
/// [`try_then_wait`].
#[async_trait]
pub trait AcquirePolicy: Send + Sync {
    /// Takes the lock, waiting until `until` at most (`None`: as long as it
    /// takes; an instant already past: one attempt, no waiting). Calls
    /// [`WaitSignals::started`] once it waits and gives up with
    /// [`Acquisition::CallerGone`] when [`WaitSignals::caller_gone`]
    /// resolves. A server-side wait must not leave a lock held longer than
    /// one TTL for a caller that went away.
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition>;
}

impl dyn Backend {
    /// Takes the lock as [`AcquirePolicy::acquire`] says, with the backend's
    /// own policy, or [`try_then_wait`] over its parts when it has none.
    pub async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        match self.acquire_policy() {
            Some(policy) => policy.acquire(request, until, signals).await,
            None => try_then_wait(self, request, until, signals).await,
        }
    }
}

/// How one acquisition call ([`AcquirePolicy::acquire`], or `acquire` on
/// `dyn Backend`) ended.
#[derive(Debug)]
pub enum Acquisition {
    /// The lock was taken.
    Granted {
        /// The lease.
        grant: Grant,
        /// When the request that proved the grant was sent: the lease's
        /// deadline counts its TTL from here.
        proven_from: Instant,
    },
    /// The lock was still busy when the call's deadline came.
    Busy,
    /// The caller went away ([`WaitSignals::caller_gone`]) before a grant.
    CallerGone,
}

/// What the waiting policy above a backend lends one acquisition call: a way to say that the call is now waiting (for observers) and a
/// signal that the caller went away.
pub struct WaitSignals<'a> {
    started: Box<dyn FnMut() + Send + 'a>,
    waiting: bool,
    caller_gone: tokio::sync::oneshot::Receiver<()>,
    gone: bool,
}

impl<'a> WaitSignals<'a> {
    /// Signals that call `started` (once) when the acquisition starts
    /// waiting, and whose [`caller_gone`](Self::caller_gone) resolves when
    /// the sender of `caller_gone` is dropped.
    pub fn new(
        started: impl FnMut() + Send + 'a,
        caller_gone: tokio::sync::oneshot::Receiver<()>,
    ) -> Self {
        WaitSignals {
            started: Box::new(started),
            waiting: false,
            caller_gone,
            gone: false,
        }
    }

    /// Says that the acquisition is waiting for the lock; only the first
    /// call counts.
    pub fn started(&mut self) {
        if !self.waiting {
            self.waiting = true;
            (self.started)();
        }
    }

    /// True once [`started`](Self::started) was called.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Resolves when the caller stopped waiting for the result (its future
    /// was dropped). Cancel-safe; resolves at once ever after.
    pub async fn caller_gone(&mut self) {
        if !self.gone {
            // Only the sender's drop ends the wait: it never sends.
            let _ = (&mut self.caller_gone).await;
            self.gone = true;
        }
    }
}

/// The default acquisition policy (a backend without an [`AcquirePolicy`]):
/// try, and while the lock is busy, wait for the backend to report a
/// change, until `until`. An attempt in flight is never interrupted: the
/// caller leaving stops only the waits between attempts.
pub async fn try_then_wait<B: Backend + ?Sized>(
    backend: &B,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
) -> Result<Acquisition> {
    loop {
        let sent = Instant::now();
        let marker = match backend.try_acquire(request).await? {
            Attempt::Acquired(grant) => {
                return Ok(Acquisition::Granted {
                    grant,
                    proven_from: sent,
                })
            }
            Attempt::Busy(marker) => marker,
        };
        if until.is_some_and(|until| Instant::now() >= until) {
            return Ok(Acquisition::Busy);
        }
        signals.started();
        tokio::select! {
            changed = backend.wait_for_change(request, marker, until) => changed?,
            _ = signals.caller_gone() => return Ok(Acquisition::CallerGone),
        }
    }
}

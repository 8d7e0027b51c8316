//! The async [`Backend`] trait: the few primitives a coordination service must
//! offer. Waiting policy, lease keeping, events and the public API live once,
//! above it, in [`crate::client`], [`crate::waiting`] and [`crate::keeper`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::inspect::LockStatus;

/// What a backend can do; the conformance suite gates its tests on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Grants carry a fencing token that strictly increases per name.
    pub fencing: bool,
    /// [`Backend::watch`] notices a lost lease before the next renewal.
    pub loss_watch: bool,
    /// [`Backend::wait_for_change`] is woken by the server, not by polling.
    pub change_notifications: bool,
    /// Limits above 1 (counting semaphores) are supported.
    pub semaphores: bool,
    /// Several leases share one renewal (one session renews them all).
    pub shared_renewal: bool,
    /// [`Backend::lock_events`] streams every client's acquisitions and releases.
    pub event_stream: bool,
    /// [`Backend::status`], [`Backend::list`], [`Backend::force_release`] and
    /// [`Backend::renew_holder`] work (operator views and the name registry).
    pub inspection: bool,
    /// The server waits for the lock on the client's behalf (one call per
    /// acquisition): the backend overrides [`Backend::acquire`].
    pub server_wait: bool,
    /// A lock nobody holds takes a new limit at once. Without it the server
    /// keeps an idle lock's limit until it forgets the lock (LDLM's garbage
    /// collection), and another limit is a [`crate::Error::LimitMismatch`]
    /// until then.
    pub idle_limit_resets: bool,
    /// A lease outlives the connection and the process that took it: left
    /// alone, it stays until its TTL runs out. Without it (LDLM) the server
    /// frees a lock as soon as the connection that took it ends.
    pub outlives_connection: bool,
}

/// One acquisition request, checked and with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireRequest {
    /// The lock's name (already validated).
    pub name: String,
    /// 1 for a mutex, N for a counting semaphore.
    pub limit: u32,
    /// The lease TTL.
    pub ttl: Duration,
    /// The holder value stored with the lease.
    pub value: String,
}

/// A lease granted by a backend.
pub struct Grant {
    /// The lock's name.
    pub name: String,
    /// The limit the lock was taken with.
    pub limit: u32,
    /// The backend's id for this holder (Consul session, LDLM key, …).
    pub holder: String,
    /// Strictly increasing per name across grants; `None` where the backend has none.
    pub fencing_token: Option<u64>,
    /// The TTL the backend granted (may be rounded up from the request).
    pub ttl: Duration,
    /// Set when the backend can vouch for the lease only until this instant
    /// before its first renewal (a Consul session older than the grant).
    pub proven_until: Option<Instant>,
    /// Grants with the same unit are renewed by one [`Backend::renew`] call;
    /// `None` means this grant is renewed on its own.
    pub renewal_unit: Option<String>,
    /// Backend-private state, read back by the backend's own methods.
    pub detail: Arc<dyn Any + Send + Sync>,
}

impl Grant {
    /// The backend-private detail as `T`. Backends only ever see their own grants.
    pub fn detail<T: Any + Send + Sync>(&self) -> &T {
        self.detail
            .downcast_ref::<T>()
            .expect("a grant was handed to a backend that did not make it")
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("holder", &self.holder)
            .field("fencing_token", &self.fencing_token)
            .field("ttl", &self.ttl)
            .field("proven_until", &self.proven_until)
            .field("renewal_unit", &self.renewal_unit)
            .finish_non_exhaustive()
    }
}

/// Where a busy lock stood when an attempt failed, so that
/// [`Backend::wait_for_change`] can wait for it to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeMarker {
    /// A backend-defined version (Consul's index, the memory store's counter).
    pub version: u64,
    /// Set when the lock looked free but could not be taken yet (Consul
    /// lock-delay): try again after this long even if nothing changes.
    pub retry_after: Option<Duration>,
}

/// The result of one acquisition attempt.
#[derive(Debug)]
pub enum Attempt {
    /// The lock was taken.
    Acquired(Grant),
    /// The lock is busy; wait for a change past the marker.
    Busy(ChangeMarker),
}

/// How one [`Backend::acquire`] call ended.
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

/// What the waiting policy above a backend lends one [`Backend::acquire`]
/// call: a way to say that the call is now waiting (for observers) and a
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

/// The default acquisition policy ([`Backend::acquire`]): try, and while the
/// lock is busy, wait for the backend to report a change, until `until`. An
/// attempt in flight is never interrupted: the caller leaving stops only the
/// waits between attempts.
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

/// The result of renewing one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewOutcome {
    /// Still held; valid for `ttl` from when the renewal was sent.
    Renewed {
        /// How long the lease is now guaranteed.
        ttl: Duration,
    },
    /// The backend no longer holds this lease.
    Lost {
        /// Why, as the backend tells it.
        reason: String,
    },
}

/// How a lease ended without a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The lease was lost.
    Lost,
    /// The holder stopped renewing it on purpose ([`crate::Lease::abandon`]);
    /// the backend must not renew it again.
    Abandoned,
}

/// A coordination service that can hold leases.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The scheme this backend serves (`"memory"`, `"consul"`, …).
    fn scheme(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Takes the lock, waiting until `until` at most (`None`: as long as it
    /// takes; an instant already past: one attempt, no waiting). Calls
    /// [`WaitSignals::started`] once it waits and gives up with
    /// [`Acquisition::CallerGone`] when [`WaitSignals::caller_gone`] resolves.
    ///
    /// The default is [`try_then_wait`]. A backend whose server waits for it
    /// (LDLM's `Lock` call) overrides this instead; it must not leave a lock
    /// held longer than one TTL for a caller that went away.
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        try_then_wait(self, request, until, signals).await
    }

    /// True when the backend overrides [`Backend::acquire`] with its own
    /// policy (LDLM's server-side wait, Consul's shared blocking queries):
    /// wrappers then hand it whole calls rather than running
    /// [`try_then_wait`] over its parts.
    fn has_own_acquire(&self) -> bool {
        false
    }

    /// Tries once to take the lock, without waiting for holders to leave.
    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt>;

    /// Returns once the lock may have changed since `marker`, or at `until`.
    /// Spurious returns are allowed; returning early is never an error.
    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()>;

    /// Renews grants that share one renewal unit; one outcome per grant, in order.
    /// An `Err` means nothing is known (retry); it does not mean lost.
    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>>;

    /// Gives the lease back. Fails with [`crate::Error::Lost`] when the
    /// backend no longer held it.
    async fn release(&self, grant: &Grant) -> Result<()>;

    /// Resolves with a reason once the backend shows the lease is gone.
    /// Backends without [`Capabilities::loss_watch`] never resolve.
    async fn watch(&self, grant: &Grant) -> String {
        let _ = grant;
        std::future::pending().await
    }

    /// Told when a lease ends other than by [`Backend::release`], so the
    /// backend can drop what it kept for it.
    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        let _ = (grant, end);
    }

    /// A stream of lock events seen by this backend, for backends with
    /// [`Capabilities::event_stream`]: at least those of the names starting
    /// with `prefix` (a name watched alone is its own prefix), from now on.
    /// It may carry other names too; the consumer filters.
    fn lock_events(&self, prefix: &str) -> Option<crate::LockFeed> {
        let _ = prefix;
        None
    }

    /// Who holds `name` now (any client).
    async fn status(&self, name: &str) -> Result<LockStatus> {
        let _ = name;
        Err(self.unsupported("lock status"))
    }

    /// The names starting with `prefix` that somebody holds now, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let _ = prefix;
        Err(self.unsupported("listing locks"))
    }

    /// Takes the leases on `name` away from their holders (only `holder`'s
    /// when given), as an operator would; returns how many were released.
    /// The holders learn it as a lost lease.
    async fn force_release(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        let _ = (name, holder);
        Err(self.unsupported("releasing another process's lease"))
    }

    /// Renews `holder`'s lease on `name` for `ttl` (backends that renew a
    /// session may keep its own TTL); returns the TTL granted. Fails with
    /// [`Error::NotHeld`] when `holder` does not hold `name`.
    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        let _ = (name, holder, ttl);
        Err(self.unsupported("renewing another process's lease"))
    }

    /// The error for an operation this backend does not offer.
    fn unsupported(&self, what: &str) -> Error {
        Error::invalid(format!(
            "the {} backend does not support {what}",
            self.scheme()
        ))
    }

    /// Frees what the backend keeps for the client (sessions, connections).
    async fn close(&self) {}
}

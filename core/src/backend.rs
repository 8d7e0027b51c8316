//! The async [`Backend`] trait: the few primitives a coordination service must
//! offer, and the parts it offers or not ([`AcquirePolicy`], [`LossWatch`],
//! [`LockEventSource`], [`Inspect`], [`HolderOps`]). Waiting policy, lease
//! keeping, events and the public API live once, above it, in
//! [`crate::client`], [`crate::waiting`] and [`crate::keeper`].
//!
//! This layer imports only the shared data (`crate::model`) and the
//! errors; the public API's types it speaks of (`LockStatus`, `LockFeed`,
//! [`Capabilities`]) live in the leaf module and are re-exported where the
//! API shows them.
//!
//! **No provided methods.** Neither [`Backend`] nor any of its parts has a
//! method with a default body. What a default would do is either a free
//! function a backend calls ([`try_then_wait`], [`unsupported`]) or a part
//! the backend does not offer (`None`), read through the calls on
//! `dyn Backend` (`acquire`, `watch`, `lock_events`, `capabilities`,
//! `unsupported`). So a wrapper such as the tracing one must write out
//! every method, and cannot fall back on a default where the backend it
//! wraps has its own: adding a method breaks its build until it forwards
//! it. Keep it so; should a default creep in, clippy's
//! `missing_trait_methods`, denied on the wrapper's impls, fails the lint
//! check (see `traced.rs`).

mod acquire;
mod capabilities;
mod operator;
mod watch;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use self::acquire::{try_then_wait, AcquirePolicy, Acquisition, WaitSignals};
pub use self::capabilities::DeclaredCapabilities;
pub use self::operator::{HolderOps, Inspect};
pub use self::watch::{LockEventSource, LossWatch};
pub use crate::model::Capabilities;

use crate::error::{Error, Result};

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

/// A coordination service that can hold leases: the calls every backend
/// makes, and the parts it offers or not (`None`). What it can do
/// ([`Capabilities`]) is what it declares ([`Backend::declared_capabilities`])
/// plus what the parts it offers show. No method has a default body (see
/// the module docs).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The scheme this backend serves (`"memory"`, `"consul"`, …).
    fn scheme(&self) -> &'static str;

    /// What this backend says it can do, beyond what the parts it offers
    /// show; the whole is `capabilities` on `dyn Backend`.
    fn declared_capabilities(&self) -> DeclaredCapabilities;

    /// The backend's own acquisition policy (LDLM's server-side wait,
    /// Consul's and MongoDB's waiters parked on a shared query), handed
    /// whole calls; `None`: the default, [`try_then_wait`] over
    /// [`Backend::try_acquire`] and [`Backend::wait_for_change`].
    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy>;

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

    /// Told when a lease ends other than by [`Backend::release`], so the
    /// backend can drop what it kept for it (an empty body when it keeps
    /// nothing).
    fn forget(&self, grant: &Grant, end: LeaseEnd);

    /// How the backend notices a lost lease before the next renewal
    /// (capability `loss_watch`); `None`: only renewals tell.
    fn loss_watch(&self) -> Option<&dyn LossWatch>;

    /// The stream of every client's lock events (capability
    /// `event_stream`); `None`: the backend has none.
    fn event_source(&self) -> Option<&dyn LockEventSource>;

    /// Operator views: status, list, force release (capability
    /// `inspection`); `None`: the backend cannot tell who holds a lock.
    fn inspect(&self) -> Option<&dyn Inspect>;

    /// Release and renewal of one lease by its holder id, possibly another
    /// process's; `None`: the backend cannot act on a lease it did not grant
    /// here.
    fn holder_ops(&self) -> Option<&dyn HolderOps>;

    /// Frees what the backend keeps for the client (sessions, connections);
    /// an empty body when it keeps nothing.
    async fn close(&self);
}

/// The error for an operation the `scheme` backend does not offer: an
/// invalid argument naming the backend and `what` it does not support.
pub fn unsupported(scheme: &str, what: &str) -> Error {
    Error::invalid(format!("the {scheme} backend does not support {what}"))
}

impl dyn Backend {
    /// The error for an operation this backend does not offer
    /// ([`unsupported`]).
    pub fn unsupported(&self, what: &str) -> Error {
        unsupported(self.scheme(), what)
    }

    /// A stream of lock events seen by this backend, where it offers a
    /// [`LockEventSource`] (else `None`): at least those of the names
    /// starting with `prefix`, from now on.
    pub fn lock_events(&self, prefix: &str) -> Option<crate::model::LockFeed> {
        Some(self.event_source()?.lock_events(prefix))
    }
}

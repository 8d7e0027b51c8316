//! The data that crosses between the backends and the public API: what a
//! backend can do ([`Capabilities`]), who holds a lock ([`LockStatus`],
//! [`HolderStatus`]) and what happened to a lock ([`LockEvent`],
//! [`LockEventKind`], carried by a [`LockFeed`]).
//!
//! A leaf: it imports nothing from the crate, so the [`crate::backend`]
//! trait and the public API above it (`client`, `inspect`, `lock_events`,
//! `registry`) can both use it without the trait knowing the API. The
//! public paths (`polylock::LockStatus`, `polylock::inspect::LockStatus`,
//! `polylock::LockEvent`, `polylock::backend::Capabilities`, …) re-export
//! these types.

use std::time::Duration;

use tokio::sync::{broadcast, oneshot};

/// What a backend can do; the conformance suite, the bindings' tests and the
/// CLI gate on these. Some a backend declares, the others follow from the
/// parts of [`crate::backend::Backend`] it offers (see the field docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Grants carry a fencing token that strictly increases per name.
    pub fencing: bool,
    /// A lost lease is noticed before the next renewal. Derived: the
    /// backend offers [`crate::backend::LossWatch`].
    pub loss_watch: bool,
    /// [`crate::backend::Backend::wait_for_change`] is woken by the server,
    /// not by polling.
    pub change_notifications: bool,
    /// Limits above 1 (counting semaphores) are supported.
    pub semaphores: bool,
    /// Several leases share one renewal (one session renews them all).
    pub shared_renewal: bool,
    /// Every client's acquisitions and releases can be streamed
    /// ([`crate::Client::watch`]). Derived: the backend offers
    /// [`crate::backend::LockEventSource`].
    pub event_stream: bool,
    /// Operator views work: status, list and force release
    /// ([`crate::Client::status`], the name registry's look-ups). Derived:
    /// the backend offers [`crate::backend::Inspect`].
    pub inspection: bool,
    /// The server waits for the lock on the client's behalf (one call per
    /// acquisition), with the backend's own
    /// [`crate::backend::AcquirePolicy`].
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

/// The holders of one lock, as the backend sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The lock's name.
    pub name: String,
    /// The limit the lock is in use with (1 for a mutex); `None` when nobody holds it.
    pub limit: Option<u32>,
    /// The live holders, in no particular order.
    pub holders: Vec<HolderStatus>,
}

impl LockStatus {
    /// The status of a lock nobody holds.
    pub fn free(name: &str) -> Self {
        LockStatus {
            name: name.to_string(),
            limit: None,
            holders: Vec::new(),
        }
    }

    /// True when nobody holds the lock.
    pub fn is_free(&self) -> bool {
        self.holders.is_empty()
    }
}

/// One holder of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderStatus {
    /// The holder id ([`crate::Lease::holder`]): Consul session, ledger id, …
    pub holder: String,
    /// The holder value stored with the lease.
    pub value: String,
    /// The grant's fencing token, where the backend can tell it.
    pub fencing_token: Option<u64>,
    /// Time left before the backend frees the lease unless it is renewed,
    /// where the backend can tell it (Consul cannot: sessions do not expose it).
    pub expires_in: Option<Duration>,
}

/// What happened to a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockEventKind {
    /// A holder took the lock (or a slot of it).
    Acquired,
    /// A holder gave it back.
    Released,
    /// A holder's lease ran out and another holder took its place.
    Expired,
}

/// One event of the lock event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// The lock's name.
    pub name: String,
    /// What happened.
    pub kind: LockEventKind,
    /// The holder concerned (for `Expired`, the holder whose lease ran out).
    pub holder: String,
    /// The fencing token of that holder's grant, where the backend has one.
    pub fencing_token: Option<u64>,
}

/// What a backend hands out for an event stream: the events, and, where the
/// stream needs a first read of the server before it sees changes (Consul),
/// a signal sent once it does.
pub struct LockFeed {
    events: broadcast::Receiver<LockEvent>,
    live: Option<oneshot::Receiver<()>>,
}

impl LockFeed {
    /// A feed that sees every change from now on.
    pub fn live(events: broadcast::Receiver<LockEvent>) -> Self {
        LockFeed { events, live: None }
    }

    /// A feed that sees changes once `live` is sent (or dropped).
    pub fn starting(events: broadcast::Receiver<LockEvent>, live: oneshot::Receiver<()>) -> Self {
        LockFeed {
            events,
            live: Some(live),
        }
    }

    /// The events, and the signal that the feed is live (if it is not yet).
    pub(crate) fn into_parts(
        self,
    ) -> (
        broadcast::Receiver<LockEvent>,
        Option<oneshot::Receiver<()>>,
    ) {
        (self.events, self.live)
    }
}

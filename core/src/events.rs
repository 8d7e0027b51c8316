//! Observer hooks: what happened to which lock, for metrics and logs.
//!
//! Observers are called inline on polylock's runtime threads, so they must be
//! quick and must not block. A panicking observer is caught and logged; it
//! never breaks the lease machinery.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Something that happened to a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A lease was granted.
    Acquired {
        /// The lock's name.
        name: String,
        /// The lease's fencing token, where the backend gives one.
        fencing_token: Option<u64>,
        /// How long the acquire call took.
        waited: Duration,
    },
    /// A lease was released by its holder.
    Released {
        /// The lock's name.
        name: String,
        /// How long the lease was held.
        held: Duration,
    },
    /// A renewal proved a lease still held.
    Renewed {
        /// The lock's name.
        name: String,
    },
    /// A lease was lost (expired, revoked, or unprovable in time).
    Lost {
        /// The lock's name.
        name: String,
        /// Why.
        reason: String,
        /// How long the lease was held until it was lost.
        held: Duration,
    },
    /// An acquire call found the lock busy and started waiting. Where the
    /// server waits ([`crate::Capabilities::server_wait`]: LDLM), it cannot
    /// tell whether it parked the call: every acquire that may wait reports
    /// this as its call is sent.
    WaitStarted {
        /// The lock's name.
        name: String,
    },
    /// A wait that [`Event::WaitStarted`] announced ended.
    WaitEnded {
        /// The lock's name.
        name: String,
        /// Whether the wait ended with the lock acquired.
        acquired: bool,
        /// How long it waited.
        waited: Duration,
    },
}

/// Receives [`Event`]s. Register through [`crate::ClientOptions::observer`].
pub trait Observer: Send + Sync {
    /// Called once per event, on a runtime thread; keep it short.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Observer for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// The observers of one client.
#[derive(Clone, Default)]
pub(crate) struct Observers(Arc<[Arc<dyn Observer>]>);

impl Observers {
    pub(crate) fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Observers(observers.into())
    }

    /// Tells every observer; `make` runs only when there is one to tell.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.0.is_empty() {
            return;
        }
        let event = make();
        for observer in self.0.iter() {
            if catch_unwind(AssertUnwindSafe(|| observer.on_event(&event))).is_err() {
                tracing::error!(?event, "a polylock observer panicked; ignored");
            }
        }
    }
}

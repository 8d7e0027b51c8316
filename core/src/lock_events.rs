//! The distributed lock event stream: acquisitions, releases and expiries of
//! a lock by *any* client, as the backend sees them (mongo-dlock's lock /
//! unlock stream). Backends with [`crate::Capabilities::event_stream`] feed
//! it; [`crate::Client::watch`] reads it for one name.
//!
//! It is a notification stream, not a log: a consumer that falls far behind
//! skips what it missed (see [`LockEvents::next`]).

use tokio::sync::broadcast;

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

/// One event of the stream.
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

/// The events of one lock, from when [`crate::Client::watch`] was called.
pub struct LockEvents {
    name: String,
    events: broadcast::Receiver<LockEvent>,
}

impl LockEvents {
    pub(crate) fn new(name: String, events: broadcast::Receiver<LockEvent>) -> Self {
        LockEvents { name, events }
    }

    /// The next event of this lock; `None` once the client is gone. Events a
    /// slow consumer fell too far behind on are skipped (and logged).
    pub async fn next(&mut self) -> Option<LockEvent> {
        loop {
            match self.events.recv().await {
                Ok(event) if event.name == self.name => return Some(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(name = %self.name, missed, "lock event consumer fell behind")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

//! The distributed lock event stream: acquisitions, releases and expiries of
//! a lock by *any* client, as the backend sees them (mongo-dlock's lock /
//! unlock stream). Backends with [`crate::Capabilities::event_stream`] feed
//! it; [`crate::Client::watch`] reads it for one name.
//!
//! It is a notification stream, not a log: a consumer that falls far behind
//! skips what it missed (see [`LockEvents::next`]).

use tokio::sync::{broadcast, oneshot};

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
}

/// Which locks a [`LockEvents`] stream follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// One lock.
    Name(String),
    /// Every lock whose name starts with this.
    Prefix(String),
}

impl Selection {
    fn matches(&self, name: &str) -> bool {
        match self {
            Selection::Name(wanted) => name == wanted,
            Selection::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// The events of one lock ([`crate::Client::watch`]) or of every lock under
/// a prefix ([`crate::Client::watch_prefix`]), from when the stream was made.
pub struct LockEvents {
    selection: Selection,
    events: broadcast::Receiver<LockEvent>,
    live: Option<oneshot::Receiver<()>>,
}

impl LockEvents {
    pub(crate) fn new(selection: Selection, feed: LockFeed) -> Self {
        LockEvents {
            selection,
            events: feed.events,
            live: feed.live,
        }
    }

    /// Resolves once the stream sees every change: at once on `memory://`
    /// and MongoDB; on Consul once its blocking query's first read came back
    /// (about one round trip after the stream was made). Await it before
    /// acting when the events of what you do next must all show.
    pub async fn ready(&mut self) {
        if let Some(live) = self.live.take() {
            let _ = live.await;
        }
    }

    /// The next event of the locks followed; `None` once the client is gone.
    /// Events a slow consumer fell too far behind on are skipped (and logged).
    pub async fn next(&mut self) -> Option<LockEvent> {
        loop {
            match self.events.recv().await {
                Ok(event) if self.selection.matches(&event.name) => return Some(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(selection = ?self.selection, missed, "lock event consumer fell behind")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

//! The distributed lock event stream: acquisitions, releases and expiries of
//! a lock by *any* client, as the backend sees them (mongo-dlock's lock /
//! unlock stream). Backends with [`crate::Capabilities::event_stream`] feed
//! it; [`crate::Client::watch`] reads it for one name.
//!
//! It is a notification stream, not a log: a consumer that falls far behind
//! skips what it missed (see [`LockEvents::next`]).

use tokio::sync::{broadcast, oneshot};

pub use crate::model::{LockEvent, LockEventKind, LockFeed};

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
        let (events, live) = feed.into_parts();
        LockEvents {
            selection,
            events,
            live,
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

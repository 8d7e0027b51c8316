//! What a backend may offer to watch: the loss of a lease it granted
//! ([`LossWatch`]: capability `loss_watch`) and every client's lock events
//! ([`LockEventSource`]: capability `event_stream`).

use async_trait::async_trait;

use super::{Backend, Grant};
use crate::model::LockFeed;

/// Notices a lost lease before the next renewal would.
#[async_trait]
pub trait LossWatch: Send + Sync {
    /// Resolves with a reason once the backend shows the lease is gone.
    async fn watch(&self, grant: &Grant) -> String;
}

/// Streams every client's acquisitions, releases and expiries.
pub trait LockEventSource: Send + Sync {
    /// A stream of lock events seen by this backend: at least those of the
    /// names starting with `prefix` (a name watched alone is its own
    /// prefix), from now on. It may carry other names too; the consumer
    /// filters.
    fn lock_events(&self, prefix: &str) -> LockFeed;
}

impl dyn Backend {
    /// Resolves with a reason once the backend shows the lease is gone,
    /// through its [`LossWatch`]; never, for a backend without one.
    pub async fn watch(&self, grant: &Grant) -> String {
        match self.loss_watch() {
            Some(watch) => watch.watch(grant).await,
            None => std::future::pending().await,
        }
    }
}

//! `memory://[namespace]`: an in-process backend with the full semantics
//! (limits, TTL expiry, fencing tokens, notification-driven waits). It is the
//! embedded default and the oracle the conformance suite checks others against.

mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use url::Url;

pub use store::{HolderInfo, MemoryStore};

use crate::backend::{
    AcquireRequest, Attempt, Backend, Capabilities, ChangeMarker, Grant, RenewOutcome,
};
use crate::error::{Error, Result};
use crate::inspect::{HolderStatus, LockStatus};

/// The `memory://` backend: a handle on a named [`MemoryStore`].
pub struct MemoryBackend {
    store: Arc<MemoryStore>,
}

impl MemoryBackend {
    /// The backend for `memory://NAMESPACE` (the host part; empty for `memory://`).
    pub fn from_url(url: &Url) -> Result<Self> {
        if url.query().is_some() || !matches!(url.path(), "" | "/") {
            return Err(Error::invalid(
                "memory:// URLs take only a namespace: memory://[namespace]",
            ));
        }
        Ok(MemoryBackend {
            store: MemoryStore::named(url.host_str().unwrap_or("")),
        })
    }

    /// The store this backend uses.
    pub fn store(&self) -> &Arc<MemoryStore> {
        &self.store
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn scheme(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            loss_watch: true,
            change_notifications: true,
            semaphores: true,
            shared_renewal: false,
            event_stream: true,
            inspection: true,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        self.store.try_acquire(request)
    }

    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        self.store
            .wait_for_change(&request.name, marker, until)
            .await;
        Ok(())
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        Ok(grants.iter().map(|g| self.store.renew(g)).collect())
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        self.store.release(grant)
    }

    // Written out (not `async fn`): the store's watch future, boxed as it
    // is, stays small for as long as the lease is held.
    fn watch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        grant: &'life1 Grant,
    ) -> Pin<Box<dyn Future<Output = String> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.store.watch(grant))
    }

    async fn status(&self, name: &str) -> Result<LockStatus> {
        let snapshot = self.store.snapshot(name);
        Ok(LockStatus {
            name: name.to_string(),
            limit: snapshot.limit,
            holders: snapshot
                .holders
                .into_iter()
                .map(|h| HolderStatus {
                    holder: h.holder,
                    value: h.value,
                    fencing_token: Some(h.fencing_token),
                    expires_in: Some(h.expires_in),
                })
                .collect(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.store.held_names(prefix))
    }

    async fn force_release(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        let mut released = 0;
        for info in self.store.holders(name) {
            if holder.is_none_or(|h| h == info.holder) && self.store.revoke(name, &info.holder) {
                released += 1;
            }
        }
        Ok(released)
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        if self.store.renew_holder(name, holder, ttl) {
            Ok(ttl)
        } else {
            Err(Error::NotHeld {
                name: name.to_string(),
                reason: format!("{holder:?} does not hold it (released, expired or revoked)"),
            })
        }
    }

    fn lock_events(&self, _prefix: &str) -> Option<crate::LockFeed> {
        Some(crate::LockFeed::live(self.store.subscribe()))
    }
}

//! `memory://[namespace]`: an in-process backend with the full semantics
//! (limits, TTL expiry, fencing tokens, notification-driven waits). It is the
//! embedded default and the oracle the conformance suite checks others against.

mod inspect;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use url::Url;

pub use store::{HolderInfo, MemoryStore};

use crate::backend::{
    AcquirePolicy, AcquireRequest, Attempt, Backend, ChangeMarker, DeclaredCapabilities, Grant,
    HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch, RenewOutcome,
};
use crate::error::{Error, Result};
use crate::model::LockFeed;

/// The namespace a `memory://NAMESPACE` URL names (its host part; empty
/// for `memory://`), checked without making its store.
pub(crate) fn namespace(url: &Url) -> Result<&str> {
    if url.query().is_some() || !matches!(url.path(), "" | "/") {
        return Err(Error::invalid(
            "memory:// URLs take only a namespace: memory://[namespace]",
        ));
    }
    Ok(url.host_str().unwrap_or(""))
}

/// The `memory://` backend: a handle on a named [`MemoryStore`].
pub struct MemoryBackend {
    store: Arc<MemoryStore>,
}

impl MemoryBackend {
    /// The backend for `memory://NAMESPACE` (the host part; empty for `memory://`).
    pub fn from_url(url: &Url) -> Result<Self> {
        Ok(MemoryBackend {
            store: MemoryStore::named(namespace(url)?),
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

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        DeclaredCapabilities {
            fencing: true,
            change_notifications: true,
            semaphores: true,
            shared_renewal: false,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        None
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

    fn forget(&self, _grant: &Grant, _end: LeaseEnd) {}

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        Some(self)
    }

    fn event_source(&self) -> Option<&dyn LockEventSource> {
        Some(self)
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        Some(self)
    }

    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        Some(self)
    }

    async fn close(&self) {}
}

#[async_trait]
impl LossWatch for MemoryBackend {
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
}

impl LockEventSource for MemoryBackend {
    fn lock_events(&self, _prefix: &str) -> LockFeed {
        LockFeed::live(self.store.subscribe())
    }
}

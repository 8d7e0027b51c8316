//! A [`Backend`] wrapper that puts every backend call in a `tracing` span
//! (`polylock.backend`, with fields `scheme`, `op` and `name`) and logs its
//! failures at debug level. [`crate::url::connect`] wraps every backend in
//! it, so subscribers see each round trip whatever the backend.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{
    AcquireRequest, Acquisition, Attempt, Backend, Capabilities, ChangeMarker, Grant, LeaseEnd,
    RenewOutcome, WaitSignals,
};
use crate::error::Result;
use crate::inspect::LockStatus;
use crate::lock_events::LockFeed;

/// Wraps a backend; see the module docs.
pub(crate) struct TracedBackend(pub(crate) Arc<dyn Backend>);

impl TracedBackend {
    /// Runs `call` in a span for `op` on `name`, logging an error result.
    async fn traced<T>(
        &self,
        op: &'static str,
        name: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = tracing::debug_span!("polylock.backend", scheme = self.0.scheme(), op, name);
        async move {
            let result = call.await;
            if let Err(error) = &result {
                tracing::debug!(%error, "backend call failed");
            }
            result
        }
        .instrument(span)
        .await
    }
}

#[async_trait]
impl Backend for TracedBackend {
    fn scheme(&self) -> &'static str {
        self.0.scheme()
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    fn has_own_acquire(&self) -> bool {
        self.0.has_own_acquire()
    }

    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        if self.0.has_own_acquire() {
            // The backend's own policy: one span for the whole call.
            let call = self.0.acquire(request, until, signals);
            self.traced("acquire", &request.name, call).await
        } else {
            // The default policy through this wrapper: a span per attempt and wait.
            crate::backend::try_then_wait(self, request, until, signals).await
        }
    }

    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        self.traced("try_acquire", &request.name, self.0.try_acquire(request))
            .await
    }

    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        let call = self.0.wait_for_change(request, marker, until);
        self.traced("wait_for_change", &request.name, call).await
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        let name = match grants {
            [one] => one.name.as_str(),
            _ => "(several)",
        };
        self.traced("renew", name, self.0.renew(grants)).await
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        self.traced("release", &grant.name, self.0.release(grant))
            .await
    }

    // Written out (not `async fn`) so that, with the span disabled, the
    // watch is the backend's own future: a watch lives as long as its lease,
    // and a client may hold many thousands.
    fn watch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        grant: &'life1 Grant,
    ) -> Pin<Box<dyn Future<Output = String> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let span = tracing::debug_span!(
            "polylock.backend",
            scheme = self.0.scheme(),
            op = "watch",
            name = %grant.name
        );
        if span.is_disabled() {
            self.0.watch(grant)
        } else {
            Box::pin(self.0.watch(grant).instrument(span))
        }
    }

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        self.0.forget(grant, end)
    }

    fn lock_events(&self, prefix: &str) -> Option<LockFeed> {
        self.0.lock_events(prefix)
    }

    async fn status(&self, name: &str) -> Result<LockStatus> {
        self.traced("status", name, self.0.status(name)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.traced("list", prefix, self.0.list(prefix)).await
    }

    async fn force_release(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        self.traced("force_release", name, self.0.force_release(name, holder))
            .await
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        let call = self.0.renew_holder(name, holder, ttl);
        self.traced("renew_holder", name, call).await
    }

    async fn close(&self) {
        self.0
            .close()
            .instrument(tracing::debug_span!("polylock.backend", op = "close"))
            .await
    }
}

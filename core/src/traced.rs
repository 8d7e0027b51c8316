//! A [`Backend`] wrapper that puts every backend call in a `tracing` span
//! (`polylock.backend`, with fields `scheme`, `op` and `name`) and logs its
//! failures at debug level. [`crate::url::connect`] wraps every backend in
//! it, so subscribers see each round trip whatever the backend.
//!
//! # Why it cannot drop a backend's own method
//!
//! A wrapper that implements a trait with provided methods compiles without
//! forwarding them, and then runs the *default* where the wrapped backend
//! had its own (a backend's own acquire loop replaced by the generic one,
//! its operator views answered "unsupported"). So neither [`Backend`] nor
//! any part it offers ([`AcquirePolicy`], [`LossWatch`],
//! [`crate::backend::LockEventSource`], [`Inspect`], [`HolderOps`]) has a
//! provided method: what used to be a default is a free function
//! ([`crate::backend::try_then_wait`]) or a part the backend does not offer
//! (`None`). This wrapper must therefore write out every method, and a
//! method added to the trait or a part breaks its build until it is
//! forwarded. Should someone add a method with a default body anyway, each
//! impl here denies clippy's `missing_trait_methods`, so the lint check
//! (`cargo clippy -- -D warnings`, the suite's clippy phase) fails until
//! the wrapper forwards it.
//!
//! Each part accessor offers the wrapper's own traced part exactly when the
//! wrapped backend offers one, so the derived capabilities stay the
//! backend's. The tests (`traced/tests.rs`) check, with a probe backend
//! that offers every part, that each call reaches it through the wrapper,
//! and that a backend offering none keeps the default policy, run over the
//! wrapper's traced attempts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::error::{Error, Result};
use crate::model::LockStatus;

#[cfg(test)]
mod tests;

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

    /// The wrapped backend's operator views (offered by this wrapper only
    /// when the backend offers them).
    fn views(&self) -> Result<&dyn Inspect> {
        self.0.inspect().ok_or_else(|| self.gone("operator views"))
    }

    /// The wrapped backend's calls by holder id (offered by this wrapper
    /// only when the backend offers them).
    fn holders(&self) -> Result<&dyn HolderOps> {
        self.0
            .holder_ops()
            .ok_or_else(|| self.gone("calls by holder id"))
    }

    fn gone(&self, what: &str) -> Error {
        self.0.unsupported(what)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Backend for TracedBackend {
    fn scheme(&self) -> &'static str {
        self.0.scheme()
    }

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        self.0.declared_capabilities()
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        // Without a policy of the backend's own, the default one runs over
        // this wrapper's parts: a span per attempt and wait.
        self.0.acquire_policy().map(|_| self as &dyn AcquirePolicy)
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

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        self.0.forget(grant, end)
    }

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        self.0.loss_watch().map(|_| self as &dyn LossWatch)
    }

    fn event_source(&self) -> Option<&dyn LockEventSource> {
        // Making a stream is no round trip: the backend's own source.
        self.0.event_source()
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        self.0.inspect().map(|_| self as &dyn Inspect)
    }

    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        self.0.holder_ops().map(|_| self as &dyn HolderOps)
    }

    async fn close(&self) {
        self.0
            .close()
            .instrument(tracing::debug_span!("polylock.backend", op = "close"))
            .await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl AcquirePolicy for TracedBackend {
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        // Offered only over a backend with its own policy: one span for the
        // whole call.
        let call = self.0.acquire(request, until, signals);
        self.traced("acquire", &request.name, call).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl LossWatch for TracedBackend {
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
        // Offered only when the backend offers one (`loss_watch` above).
        let Some(inner) = self.0.loss_watch() else {
            return Box::pin(std::future::pending());
        };
        let span = tracing::debug_span!(
            "polylock.backend",
            scheme = self.0.scheme(),
            op = "watch",
            name = %grant.name
        );
        if span.is_disabled() {
            inner.watch(grant)
        } else {
            Box::pin(inner.watch(grant).instrument(span))
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Inspect for TracedBackend {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        self.traced("status", name, async { self.views()?.status(name).await })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.traced("list", prefix, async { self.views()?.list(prefix).await })
            .await
    }

    async fn force_release(&self, name: &str) -> Result<u32> {
        let call = async { self.views()?.force_release(name).await };
        self.traced("force_release", name, call).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl HolderOps for TracedBackend {
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool> {
        let call = async { self.holders()?.release_holder(name, holder).await };
        self.traced("release_holder", name, call).await
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        let call = async { self.holders()?.renew_holder(name, holder, ttl).await };
        self.traced("renew_holder", name, call).await
    }
}

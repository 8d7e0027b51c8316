//! Every call through [`TracedBackend`] reaches the backend it wraps, with
//! the backend's own parts; a backend without them keeps the defaults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::TracedBackend;
use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::error::Result;
use crate::model::{LockFeed, LockStatus};

/// A backend that records each call it gets, and offers every part (or
/// none).
struct Probe {
    parts: bool,
    calls: Mutex<Vec<&'static str>>,
}

impl Probe {
    fn new(parts: bool) -> Arc<Probe> {
        Arc::new(Probe {
            parts,
            calls: Mutex::default(),
        })
    }

    fn saw(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[async_trait]
impl Backend for Probe {
    fn scheme(&self) -> &'static str {
        self.saw("scheme");
        "probe"
    }

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        self.saw("declared_capabilities");
        DeclaredCapabilities {
            fencing: true,
            change_notifications: false,
            semaphores: true,
            shared_renewal: false,
            server_wait: self.parts,
            idle_limit_resets: true,
            outlives_connection: false,
        }
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        self.parts.then_some(self as &dyn AcquirePolicy)
    }

    async fn try_acquire(&self, _: &AcquireRequest) -> Result<Attempt> {
        self.saw("try_acquire");
        Ok(Attempt::Busy(ChangeMarker::default()))
    }

    async fn wait_for_change(
        &self,
        _: &AcquireRequest,
        _: ChangeMarker,
        _: Option<Instant>,
    ) -> Result<()> {
        self.saw("wait_for_change");
        Ok(())
    }

    async fn renew(&self, _: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        self.saw("renew");
        Ok(Vec::new())
    }

    async fn release(&self, _: &Grant) -> Result<()> {
        self.saw("release");
        Ok(())
    }

    fn forget(&self, _: &Grant, _: LeaseEnd) {
        self.saw("forget");
    }

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        self.parts.then_some(self as &dyn LossWatch)
    }

    fn event_source(&self) -> Option<&dyn LockEventSource> {
        self.parts.then_some(self as &dyn LockEventSource)
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        self.parts.then_some(self as &dyn Inspect)
    }

    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        self.parts.then_some(self as &dyn HolderOps)
    }

    async fn close(&self) {
        self.saw("close");
    }
}

#[async_trait]
impl AcquirePolicy for Probe {
    async fn acquire(
        &self,
        _: &AcquireRequest,
        _: Option<Instant>,
        _: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        self.saw("acquire");
        Ok(Acquisition::Busy)
    }
}

#[async_trait]
impl LossWatch for Probe {
    async fn watch(&self, _: &Grant) -> String {
        self.saw("watch");
        "probed".into()
    }
}

impl LockEventSource for Probe {
    fn lock_events(&self, _: &str) -> LockFeed {
        self.saw("lock_events");
        LockFeed::live(broadcast::channel(1).1)
    }
}

#[async_trait]
impl Inspect for Probe {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        self.saw("status");
        Ok(LockStatus::free(name))
    }

    async fn list(&self, _: &str) -> Result<Vec<String>> {
        self.saw("list");
        Ok(Vec::new())
    }

    async fn force_release(&self, _: &str) -> Result<u32> {
        self.saw("force_release");
        Ok(0)
    }
}

#[async_trait]
impl HolderOps for Probe {
    async fn release_holder(&self, _: &str, _: &str) -> Result<bool> {
        self.saw("release_holder");
        Ok(false)
    }

    async fn renew_holder(&self, _: &str, _: &str, ttl: Duration) -> Result<Duration> {
        self.saw("renew_holder");
        Ok(ttl)
    }
}

fn request() -> AcquireRequest {
    AcquireRequest {
        name: "probe/lock".into(),
        limit: 1,
        ttl: Duration::from_secs(5),
        value: String::new(),
    }
}

fn grant() -> Grant {
    Grant {
        name: "probe/lock".into(),
        limit: 1,
        holder: "h".into(),
        fencing_token: None,
        ttl: Duration::from_secs(5),
        proven_until: None,
        renewal_unit: None,
        detail: Arc::new(()),
    }
}

/// The probe wrapped, and the probe's own view to compare with.
fn wrapped(probe: &Arc<Probe>) -> (Arc<dyn Backend>, Arc<dyn Backend>) {
    let inner: Arc<dyn Backend> = probe.clone();
    (Arc::new(TracedBackend(inner.clone())), inner)
}

/// One acquisition through `backend`, with nobody waiting for it.
async fn acquire(backend: &dyn Backend) -> Acquisition {
    let (_here, gone) = oneshot::channel();
    let mut signals = WaitSignals::new(|| {}, gone);
    let now = Some(Instant::now());
    backend
        .acquire(&request(), now, &mut signals)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_call_and_part_reaches_the_wrapped_backend() {
    let probe = Probe::new(true);
    let (traced, inner) = wrapped(&probe);
    assert_eq!(traced.capabilities(), inner.capabilities());
    let capabilities = traced.capabilities();
    assert!(capabilities.loss_watch && capabilities.event_stream && capabilities.inspection);
    probe.calls();

    assert_eq!(traced.scheme(), "probe");
    let _ = traced.declared_capabilities();
    assert!(matches!(acquire(&*traced).await, Acquisition::Busy));
    let _ = traced.try_acquire(&request()).await.unwrap();
    traced
        .wait_for_change(&request(), ChangeMarker::default(), None)
        .await
        .unwrap();
    traced.renew(&[]).await.unwrap();
    traced.release(&grant()).await.unwrap();
    traced.forget(&grant(), LeaseEnd::Lost);
    assert_eq!(traced.watch(&grant()).await, "probed");
    assert!(traced.lock_events("probe/").is_some());
    let views = traced.inspect().expect("the probe's views");
    views.status("probe/lock").await.unwrap();
    views.list("probe/").await.unwrap();
    views.force_release("probe/lock").await.unwrap();
    let holders = traced.holder_ops().expect("the probe's calls by holder");
    assert!(!holders.release_holder("probe/lock", "h").await.unwrap());
    let ttl = Duration::from_secs(3);
    assert_eq!(
        holders.renew_holder("probe/lock", "h", ttl).await.unwrap(),
        ttl
    );
    traced.close().await;

    // The spans read the scheme too; every call otherwise comes once, in order.
    let calls: Vec<_> = probe
        .calls()
        .into_iter()
        .filter(|c| *c != "scheme")
        .collect();
    assert_eq!(
        calls,
        [
            "declared_capabilities",
            "acquire",
            "try_acquire",
            "wait_for_change",
            "renew",
            "release",
            "forget",
            "watch",
            "lock_events",
            "status",
            "list",
            "force_release",
            "release_holder",
            "renew_holder",
            "close",
        ]
    );
}

#[tokio::test]
async fn a_backend_without_parts_keeps_the_defaults_through_the_wrapper() {
    let probe = Probe::new(false);
    let (traced, inner) = wrapped(&probe);
    assert_eq!(traced.capabilities(), inner.capabilities());
    let capabilities = traced.capabilities();
    assert!(!capabilities.loss_watch && !capabilities.event_stream && !capabilities.inspection);
    assert!(traced.acquire_policy().is_none());
    assert!(traced.inspect().is_none() && traced.holder_ops().is_none());
    assert!(traced.lock_events("probe/").is_none());
    probe.calls();

    // The default policy runs over the wrapper's (traced) attempts.
    assert!(matches!(acquire(&*traced).await, Acquisition::Busy));
    let calls: Vec<_> = probe
        .calls()
        .into_iter()
        .filter(|c| *c != "scheme")
        .collect();
    assert_eq!(calls, ["try_acquire"]);

    let error = traced.unsupported("lock status");
    assert_eq!(error.kind(), crate::ErrorKind::InvalidArgument);
    assert_eq!(
        error.to_string(),
        "invalid argument: the probe backend does not support lock status"
    );
}

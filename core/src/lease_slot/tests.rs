//! The slot's state machine on memory://, with a backend wrapper that can
//! fail a release transiently or panic in an attempt.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::backend::{
    AcquirePolicy, AcquireRequest, Attempt, Backend, ChangeMarker, DeclaredCapabilities, Grant,
    HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch, RenewOutcome,
};
use crate::backends::memory::MemoryBackend;
use crate::{Client, ClientOptions, ErrorKind, LockOptions};

/// memory:// with faults on demand.
struct Faulty {
    inner: MemoryBackend,
    /// Releases to fail with a connection error before one goes through.
    failing_releases: AtomicU32,
    /// The next attempt panics.
    panic_next: AtomicBool,
}

#[async_trait]
impl Backend for Faulty {
    fn scheme(&self) -> &'static str {
        "memory"
    }
    fn declared_capabilities(&self) -> DeclaredCapabilities {
        self.inner.declared_capabilities()
    }
    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        None
    }
    async fn try_acquire(&self, request: &AcquireRequest) -> crate::Result<Attempt> {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("an attempt panicked (test)");
        }
        self.inner.try_acquire(request).await
    }
    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> crate::Result<()> {
        self.inner.wait_for_change(request, marker, until).await
    }
    async fn renew(&self, grants: &[Arc<Grant>]) -> crate::Result<Vec<RenewOutcome>> {
        self.inner.renew(grants).await
    }
    async fn release(&self, grant: &Grant) -> crate::Result<()> {
        let failing = self.failing_releases.load(Ordering::SeqCst);
        if failing > 0 {
            self.failing_releases.store(failing - 1, Ordering::SeqCst);
            return Err(Error::Connection(
                "the backend is unreachable (test)".into(),
            ));
        }
        self.inner.release(grant).await
    }
    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        self.inner.forget(grant, end)
    }
    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        self.inner.loss_watch()
    }
    fn event_source(&self) -> Option<&dyn LockEventSource> {
        None
    }
    fn inspect(&self) -> Option<&dyn Inspect> {
        None
    }
    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        None
    }
    async fn close(&self) {}
}

struct Fixture {
    backend: Arc<Faulty>,
    client: Client,
    namespace: String,
}

fn fixture(test: &str) -> Fixture {
    let namespace = format!("slot-{test}-{}", std::process::id());
    let url = url::Url::parse(&format!("memory://{namespace}")).expect("url");
    let backend = Arc::new(Faulty {
        inner: MemoryBackend::from_url(&url).expect("memory backend"),
        failing_releases: AtomicU32::new(0),
        panic_next: AtomicBool::new(false),
    });
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let options = ClientOptions::new(format!("memory://{namespace}"));
    let client = runtime::handle().block_on(async { Client::from_backend(dyn_backend, options) });
    Fixture {
        backend,
        client,
        namespace,
    }
}

impl Fixture {
    fn slot(&self, name: &str) -> LeaseSlot {
        let options = LockOptions::mutex().ttl(Duration::from_secs(30));
        LeaseSlot::new(self.client.lock(name, options).expect("lock"))
    }

    fn store(&self) -> Arc<crate::backends::memory::MemoryStore> {
        crate::backends::memory::MemoryStore::named(&self.namespace)
    }
}

/// Starts an acquisition; its outcome arrives on the receiver, and the
/// second receiver says when it parked.
fn start(
    slot: &LeaseSlot,
    wait: Wait,
) -> (
    mpsc::Receiver<crate::Result<Option<Lease>>>,
    mpsc::Receiver<()>,
) {
    let (done_tx, done_rx) = mpsc::channel();
    let (parked_tx, parked_rx) = mpsc::channel();
    let hooks = AcquireHooks {
        wait_started: Some(Box::new(move || {
            let _ = parked_tx.send(());
        })),
    };
    slot.start_acquire(wait, hooks, move |outcome| {
        let _ = done_tx.send(outcome);
    })
    .expect("start");
    (done_rx, parked_rx)
}

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn a_second_acquisition_is_a_usage_error_while_held_or_acquiring() {
    let f = fixture("usage");
    let holder = f.slot("usage");
    holder.acquire_blocking(Wait::No).unwrap().expect("free");
    let error = holder.acquire_blocking(Wait::No).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);

    let waiter = f.slot("usage");
    let (done, parked) = start(&waiter, Wait::Forever);
    parked.recv_timeout(BOUND).expect("parked");
    let error = waiter.acquire_blocking(Wait::No).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);
    holder.release_blocking().unwrap();
    let lease = done.recv_timeout(BOUND).unwrap().unwrap().expect("granted");
    assert!(lease.is_held());
    // Dropping the handle it returned does not release the slot's lease.
    drop(lease);
    assert!(waiter.lease().expect("kept").is_held());
    waiter.release_blocking().unwrap();
    assert_eq!(
        waiter.release_blocking().unwrap_err().kind(),
        ErrorKind::NotHeld
    );
}

#[test]
fn a_cancelled_wait_takes_nothing_and_frees_the_slot() {
    let f = fixture("cancel");
    let holder = f.slot("cancel");
    let first = holder.acquire_blocking(Wait::No).unwrap().expect("free");
    let token = first.fencing_token().expect("memory has tokens");

    let waiter = f.slot("cancel");
    let (done, parked) = start(&waiter, Wait::Forever);
    parked.recv_timeout(BOUND).expect("parked");
    assert!(waiter.cancel());
    assert!(!waiter.is_acquiring());
    let error = done.recv_timeout(BOUND).unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Cancelled);
    assert!(!waiter.cancel(), "nothing left to cancel");

    holder.release_blocking().unwrap();
    let next = f.slot("cancel");
    let lease = next.acquire_blocking(Wait::No).unwrap().expect("free");
    assert_eq!(
        lease.fencing_token(),
        Some(token + 1),
        "the cancelled wait must not have taken the lock in between"
    );
    // The cancelled slot acquires again.
    next.release_blocking().unwrap();
    assert!(waiter.acquire_blocking(Wait::No).unwrap().is_some());
}

#[test]
fn a_blocking_acquisition_reports_its_parked_wait_and_answers_cancel() {
    let f = fixture("blocking");
    let holder = f.slot("blocking");
    holder.acquire_blocking(Wait::No).unwrap().expect("free");
    let waiter = f.slot("blocking");
    let (parked_tx, parked) = mpsc::channel();
    let hooks = AcquireHooks {
        wait_started: Some(Box::new(move || {
            let _ = parked_tx.send(());
        })),
    };
    let (done_tx, done) = mpsc::channel();
    let blocked = waiter.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(blocked.acquire_blocking_with(Wait::Forever, hooks));
    });
    parked.recv_timeout(BOUND).expect("parked");
    assert!(waiter.cancel());
    let error = done.recv_timeout(BOUND).unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Cancelled);

    // Inside an async runtime it refuses instead of blocking a worker.
    let inside = runtime::handle().block_on(async { waiter.acquire_blocking(Wait::No) });
    assert_eq!(inside.unwrap_err().kind(), ErrorKind::Usage);
    assert!(!waiter.is_acquiring());
    holder.release_blocking().unwrap();
    assert!(waiter.acquire_blocking(Wait::No).unwrap().is_some());
}

#[test]
fn a_cancel_racing_a_grant_never_leaks_the_lease() {
    let f = fixture("race");
    for round in 0..200 {
        let slot = f.slot("race");
        let (done, _parked) = start(&slot, Wait::Forever);
        let cancelled = slot.cancel();
        let outcome = done.recv_timeout(BOUND).unwrap();
        match outcome {
            Ok(Some(lease)) => {
                assert!(!cancelled, "round {round}: granted after a cancel");
                slot.release_blocking().unwrap();
                drop(lease);
            }
            Err(error) => {
                assert!(cancelled, "round {round}: {error}");
                assert_eq!(error.kind(), ErrorKind::Cancelled);
            }
            Ok(None) => panic!("round {round}: a forever wait ended empty"),
        }
        // Whatever happened, the lock is free again (a late grant released).
        let probe = f.slot("race");
        probe
            .acquire_blocking(Wait::For(BOUND))
            .unwrap()
            .expect("free again");
        probe.release_blocking().unwrap();
    }
}

#[test]
fn a_release_that_failed_transiently_can_be_retried() {
    let f = fixture("retry");
    let slot = f.slot("retry");
    slot.acquire_blocking(Wait::No).unwrap().expect("free");
    f.backend.failing_releases.store(1, Ordering::SeqCst);
    let error = slot.release_blocking().unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(slot.lease().expect("still in the slot").is_held());
    assert_eq!(
        slot.acquire_blocking(Wait::No).unwrap_err().kind(),
        ErrorKind::Usage,
        "the slot still holds its lease"
    );
    slot.release_blocking().unwrap();
    assert!(slot.lease().is_none());
    assert!(f.store().holders("retry").is_empty());
}

#[test]
fn lost_listeners_hear_each_lease_once_and_can_be_removed() {
    let f = fixture("lost");
    let slot = f.slot("lost");
    let (heard_tx, heard) = mpsc::channel::<(&'static str, Option<u64>)>();
    let tx = heard_tx.clone();
    let kept = slot.on_lost(Arc::new(move |event| {
        let _ = tx.send(("kept", event.fencing_token));
    }));
    let tx = heard_tx.clone();
    let removed = slot.on_lost(Arc::new(move |event| {
        let _ = tx.send(("removed", event.fencing_token));
    }));
    assert!(slot.remove_lost_listener(removed));
    assert!(!slot.remove_lost_listener(removed));

    for _ in 0..2 {
        let lease = slot.acquire_blocking(Wait::No).unwrap().expect("free");
        assert!(f.store().revoke("lost", lease.holder()));
        let (who, token) = heard.recv_timeout(BOUND).expect("told of the loss");
        assert_eq!((who, token), ("kept", lease.fencing_token()));
        // A listener added after the loss was reported hears of it alone.
        let tx = heard_tx.clone();
        let late = slot.on_lost(Arc::new(move |event| {
            let _ = tx.send(("late", event.fencing_token));
        }));
        assert_eq!(
            heard.recv_timeout(BOUND).expect("late listener told"),
            ("late", lease.fencing_token())
        );
        slot.remove_lost_listener(late);
        assert_eq!(slot.release_blocking().unwrap_err().kind(), ErrorKind::Lost);
    }
    assert!(slot.remove_lost_listener(kept));
    // Nobody heard twice.
    assert!(heard.try_recv().is_err());
}

#[test]
fn a_panicking_attempt_frees_the_slot_and_reports() {
    let f = fixture("panic");
    let slot = f.slot("panic");
    f.backend.panic_next.store(true, Ordering::SeqCst);
    let error = slot.acquire_blocking(Wait::No).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(!slot.is_acquiring());
    assert!(slot.acquire_blocking(Wait::No).unwrap().is_some());
}

#[test]
fn listeners_and_leases_do_not_keep_the_client_alive() {
    let f = fixture("alive");
    let slot = f.slot("alive");
    let client = Arc::downgrade(&f.client.inner);
    // A listener holding the client: gone with the slot.
    let captured = f.client.clone();
    slot.on_lost(Arc::new(move |_| {
        let _ = &captured;
    }));
    slot.acquire_blocking(Wait::No).unwrap().expect("free");
    slot.release_blocking().unwrap();
    let lost = f.slot("alive-lost");
    let (heard_tx, heard) = mpsc::channel();
    lost.on_lost(Arc::new(move |_| {
        let _ = heard_tx.send(());
    }));
    let lease = lost.acquire_blocking(Wait::No).unwrap().expect("free");
    assert!(f.store().revoke("alive-lost", lease.holder()));
    heard.recv_timeout(BOUND).expect("told of the loss");
    // The notifier thread holds the slot while it calls the listeners: the
    // loss report is over once a later notifier job runs.
    let (done_tx, done) = mpsc::channel();
    runtime::notify(Box::new(move || {
        let _ = done_tx.send(());
    }));
    done.recv_timeout(BOUND)
        .expect("the notifier is past the loss report");
    drop(lease);
    drop(f);
    assert!(client.upgrade().is_some(), "the slots still use it");
    drop((slot, lost));
    assert!(
        client.upgrade().is_none(),
        "a registration or a lease kept the client alive"
    );
}

#[test]
fn a_closed_slot_releases_its_lease_and_refuses_more() {
    let f = fixture("close");
    let slot = f.slot("close");
    slot.acquire_blocking(Wait::No).unwrap().expect("free");
    slot.close_blocking().unwrap();
    assert!(f.store().holders("close").is_empty());
    assert_eq!(
        slot.acquire_blocking(Wait::No).unwrap_err().kind(),
        ErrorKind::Usage
    );
}

#[test]
fn a_lease_handle_releases_its_own_lease_only() {
    let f = fixture("handle");
    let slot = f.slot("handle");
    let first = slot.acquire_blocking(Wait::No).unwrap().expect("free");
    // The current lease through its handle: a transient failure keeps it.
    f.backend.failing_releases.store(1, Ordering::SeqCst);
    let on_runtime = |slot: &LeaseSlot, lease: &Lease| {
        let (slot, lease) = (slot.clone(), Lease::view(lease.inner.clone()));
        runtime::block_on(async move { slot.release_lease(&lease).await }).unwrap()
    };
    assert!(on_runtime(&slot, &first).unwrap_err().is_transient());
    assert!(slot.lease().expect("kept for a retry").is_held());
    on_runtime(&slot, &first).unwrap();
    assert!(slot.lease().is_none(), "released through its handle");

    // An older handle leaves the slot's next lease alone.
    let second = slot.acquire_blocking(Wait::No).unwrap().expect("free");
    assert_eq!(
        on_runtime(&slot, &first).unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    assert!(slot.lease().expect("the second lease").is_held());
    let (renewing, handle) = (slot.clone(), Lease::view(second.inner.clone()));
    runtime::block_on(async move { renewing.renew_lease(&handle).await })
        .unwrap()
        .unwrap();
    slot.release_blocking().unwrap();
    assert!(f.store().holders("handle").is_empty());
}

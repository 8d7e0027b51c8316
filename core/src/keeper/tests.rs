//! The keeper's costs and rules, checked by counting (never by timing): a
//! keeper without its task is driven by hand, with made-up times, through
//! `Shared::tick` and `Book::finish`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::schedule::Renewal;
use super::{renew, Keeper, Stats, Timing};
use crate::backend::{
    AcquirePolicy, AcquireRequest, Attempt, Backend, ChangeMarker, DeclaredCapabilities, Grant,
    HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch, RenewOutcome,
};
use crate::backends::memory::MemoryBackend;
use crate::error::{Error, Result};
use crate::events::{Event, Observer, Observers};
use crate::lease::{LeaseCore, RenewedBy};

const TIMING: Timing = Timing {
    renew_fraction: 1.0 / 3.0,
    safety_fraction: 0.1,
};

/// A backend whose renewals succeed or fail on command, counted.
#[derive(Default)]
struct Scripted {
    fail: AtomicBool,
    renewals: AtomicUsize,
}

#[async_trait]
impl Backend for Scripted {
    fn scheme(&self) -> &'static str {
        "scripted"
    }

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        DeclaredCapabilities {
            fencing: false,
            change_notifications: false,
            semaphores: false,
            shared_renewal: true,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        None
    }

    async fn try_acquire(&self, _request: &AcquireRequest) -> Result<Attempt> {
        Err(Error::Backend("grants are made by the test".into()))
    }

    async fn wait_for_change(
        &self,
        _request: &AcquireRequest,
        _marker: ChangeMarker,
        _until: Option<Instant>,
    ) -> Result<()> {
        Ok(())
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        self.renewals.fetch_add(1, Ordering::Relaxed);
        if self.fail.load(Ordering::Relaxed) {
            return Err(Error::Connection("the scripted renewal fails".into()));
        }
        Ok(grants
            .iter()
            .map(|g| RenewOutcome::Renewed { ttl: g.ttl })
            .collect())
    }

    async fn release(&self, _grant: &Grant) -> Result<()> {
        Ok(())
    }

    fn forget(&self, _grant: &Grant, _end: LeaseEnd) {}

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        None
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

/// Counts the `Lost` events a keeper emits.
#[derive(Default)]
struct Losses(AtomicUsize);

impl Observer for Losses {
    fn on_event(&self, event: &Event) {
        if matches!(event, Event::Lost { .. }) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A keeper without its task (and without watchers).
fn keeper(backend: Arc<dyn Backend>, losses: &Arc<Losses>) -> Keeper {
    let observers = Observers::new(vec![losses.clone() as Arc<dyn Observer>]);
    Keeper::new(backend, observers, TIMING, false)
}

fn grant(name: &str, unit: Option<&str>, ttl: Duration) -> Grant {
    Grant {
        name: name.into(),
        limit: 1,
        holder: format!("holder-{name}"),
        fencing_token: None,
        ttl,
        proven_until: None,
        renewal_unit: unit.map(Into::into),
        detail: Arc::new(()),
    }
}

fn lease(id: u64, grant: Grant, deadline: Instant) -> Arc<LeaseCore> {
    Arc::new(LeaseCore::new(
        id,
        grant,
        "value".to_string(),
        deadline,
        RenewedBy::Keeper,
    ))
}

/// The keeper's stats since `before`.
fn since(keeper: &Keeper, before: Stats) -> Stats {
    let now = keeper.stats();
    Stats {
        wakeups: now.wakeups - before.wakeups,
        due: now.due - before.due,
        examined: now.examined - before.examined,
        most_examined: now.most_examined,
    }
}

/// Runs `renewals` as if they succeeded, sent at `at` (their leases proven
/// from then), and files their next renewals.
fn succeed(keeper: &Keeper, renewals: Vec<Renewal>, at: Instant) {
    for renewal in renewals {
        for lease in renewal.leases() {
            lease.renewed(TIMING.deadline(at, lease.grant.ttl), false);
        }
        keeper
            .shared
            .book()
            .finish(renewal, true, at, at, &keeper.shared.timing);
    }
}

#[tokio::test]
async fn a_wake_up_examines_only_what_is_due_among_5000_leases() {
    const LEASES: usize = 5000;
    let backend = Arc::new(
        MemoryBackend::from_url(&url::Url::parse("memory://keeper-5000").unwrap()).unwrap(),
    );
    let losses = Arc::new(Losses::default());
    let keeper = keeper(backend.clone(), &losses);
    let ttl = Duration::from_secs(15);
    // Lease i: deadline t0 + 10 s + i ms, so renewal due at t0 + 1.5 s + i ms.
    let t0 = Instant::now();
    let mut held = Vec::new();
    for i in 0..LEASES {
        let request = AcquireRequest {
            name: format!("keeper/{i}"),
            limit: 1,
            ttl,
            value: "value".into(),
        };
        let Attempt::Acquired(grant) = backend.try_acquire(&request).await.unwrap() else {
            panic!("{} is free", request.name);
        };
        let deadline = t0 + Duration::from_secs(10) + Duration::from_millis(i as u64);
        let lease = lease(i as u64 + 1, grant, deadline);
        keeper.keep(&lease);
        held.push(lease);
    }
    // Lease i's renewal is due at t0 + 1.5 s + i ms.
    let due: Vec<Instant> = held
        .iter()
        .map(|l| TIMING.renew_at(l.deadline(), ttl))
        .collect();
    let renew_at = |i: usize| due[i];

    // The first 100 renewals are due: 100 entries, 100 leases looked at.
    let before = keeper.stats();
    let (renewals, next) = keeper
        .shared
        .tick(renew_at(99) + Duration::from_micros(500));
    let cost = since(&keeper, before);
    assert_eq!(renewals.len(), 100);
    assert_eq!((cost.wakeups, cost.due, cost.examined), (1, 100, 100));
    assert_eq!(next, renew_at(100), "the next look is the next renewal");
    succeed(&keeper, renewals, renew_at(99));

    // Nothing more is due then.
    let before = keeper.stats();
    let (renewals, _) = keeper
        .shared
        .tick(renew_at(99) + Duration::from_micros(500));
    assert!(renewals.is_empty());
    assert_eq!(since(&keeper, before).examined, 0);

    // The next 100, and only those (the first 100 are renewed for 5 s).
    let before = keeper.stats();
    let (renewals, _) = keeper
        .shared
        .tick(renew_at(199) + Duration::from_micros(500));
    let cost = since(&keeper, before);
    assert_eq!(renewals.len(), 100);
    assert_eq!((cost.due, cost.examined), (100, 100));
    assert!(renewals
        .iter()
        .flat_map(Renewal::leases)
        .all(|l| (101..=200).contains(&l.id)));
    succeed(&keeper, renewals, renew_at(199));

    // Every wake-up looked at no more than was due: never at all 5,000.
    let total = keeper.stats();
    assert_eq!(total.examined, total.due);
    assert_eq!(total.most_examined, 100);
    assert_eq!(losses.0.load(Ordering::Relaxed), 0);

    // Released leases leave the book: 5,000 entries, then none.
    assert_eq!(keeper.shared.book().entries(), LEASES);
    for lease in &held {
        keeper.forget(lease);
    }
    assert_eq!(keeper.shared.book().entries(), 0);
}

#[tokio::test]
async fn taking_5000_leases_examines_nothing_that_is_not_due() {
    let client = crate::Client::connect("memory://keeper-take-5000")
        .await
        .unwrap();
    let mut held = Vec::new();
    for i in 0..5000 {
        let lock = client
            .lock(&format!("keeper/{i}"), crate::LockOptions::mutex())
            .unwrap();
        held.push(lock.try_acquire().await.unwrap().expect("a free name"));
    }
    // Each grant is filed, not scanned: whatever the keeper's task looked at
    // was due (within one default TTL nothing is due, unless this was slow).
    let stats = client.inner.keeper.stats();
    assert!(
        stats.examined <= stats.due,
        "the keeper looked at more than was due: {stats:?}"
    );
    for lease in &held {
        lease.release().await.unwrap();
    }
    assert_eq!(client.inner.keeper.shared.book().entries(), 0);
}

#[tokio::test]
async fn an_overdue_lease_is_lost_exactly_once() {
    let backend = Arc::new(Scripted::default());
    let losses = Arc::new(Losses::default());
    let keeper = keeper(backend.clone(), &losses);
    let ttl = Duration::from_secs(15);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    let lost = lease(1, grant("overdue", None, ttl), deadline);
    let (fired, callbacks) = mpsc::channel();
    lost.on_lost(Box::new(move |event| {
        fired.send(event.reason.clone()).unwrap();
    }));
    keeper.keep(&lost);

    // Its renewal goes out and never comes back; its deadline passes.
    let (renewals, next) = keeper.shared.tick(deadline - Duration::from_secs(5));
    assert_eq!(renewals.len(), 1);
    assert_eq!(next, deadline, "while in flight, the deadline is watched");
    let (renewals, _) = keeper.shared.tick(deadline);
    assert!(renewals.is_empty());
    assert!(!lost.is_kept());
    assert_eq!(losses.0.load(Ordering::Relaxed), 1);
    assert_eq!(
        callbacks.recv().unwrap(),
        "no renewal proved the lease before its deadline"
    );

    // Later looks, a late renewal outcome and a watcher's report change nothing.
    let before = keeper.stats();
    let (renewals, _) = keeper.shared.tick(deadline + Duration::from_secs(60));
    assert!(renewals.is_empty());
    assert_eq!(since(&keeper, before).due, 0);
    super::apply(
        &keeper.shared,
        &lost,
        RenewOutcome::Lost {
            reason: "late".into(),
        },
        t0,
        false,
    );
    keeper.lose(&lost, "the backend says so too");
    assert!(!keeper
        .shared
        .book()
        .finish(Renewal::Lease(lost.clone()), false, t0, t0, &TIMING));
    assert_eq!(losses.0.load(Ordering::Relaxed), 1);
    assert_eq!(
        lost.loss_reason().as_deref(),
        Some("no renewal proved the lease before its deadline")
    );
    // The callback ran once: the notifier runs jobs in order, so a marker
    // sent after it arrives after anything it might have sent again.
    let (marker, arrived) = mpsc::channel();
    lost.on_lost(Box::new(move |_| marker.send(()).unwrap()));
    arrived.recv().unwrap();
    assert!(callbacks.try_recv().is_err());
    assert_eq!(keeper.shared.book().entries(), 0);
}

/// A renewal in flight while the lease is released comes back "lost" (the
/// release deleted it): a release that succeeds ends the lease Released,
/// with no Lost event and no callback; one that fails declares the loss.
#[tokio::test]
async fn a_loss_reported_during_a_release_counts_only_if_the_release_fails() {
    let backend = Arc::new(Scripted::default());
    let losses = Arc::new(Losses::default());
    let keeper = keeper(backend.clone(), &losses);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (fired, callbacks) = mpsc::channel();
    let mut leases = Vec::new();
    for (id, released) in [(1, true), (2, false)] {
        let core = lease(
            id,
            grant(&format!("r{id}"), None, Duration::from_secs(15)),
            deadline,
        );
        let fired = fired.clone();
        core.on_lost(Box::new(move |event| {
            fired.send(event.name.clone()).unwrap()
        }));
        keeper.keep(&core);
        core.begin_release().unwrap();
        keeper.lose(&core, "the lock was not found");
        assert!(core.is_kept(), "noted, not declared, while releasing");
        leases.push((core, released));
    }
    assert_eq!(losses.0.load(Ordering::Relaxed), 0);

    let (released, failed) = (&leases[0].0, &leases[1].0);
    assert_eq!(released.finish_release(true), None);
    assert!(!released.is_kept());
    assert_eq!(released.loss_reason(), None);
    let deferred = failed.finish_release(false);
    assert_eq!(deferred.as_deref(), Some("the lock was not found"));
    keeper.lose(failed, &deferred.unwrap());
    assert_eq!(losses.0.load(Ordering::Relaxed), 1);
    assert_eq!(callbacks.recv().unwrap(), "r2");
    // The notifier runs jobs in order: a marker after r2's callback shows
    // that r1's never ran.
    let (marker, arrived) = mpsc::channel();
    failed.on_lost(Box::new(move |_| marker.send(()).unwrap()));
    arrived.recv().unwrap();
    assert!(callbacks.try_recv().is_err());
}

#[tokio::test]
async fn a_failed_renewal_is_retried_sooner() {
    let backend = Arc::new(Scripted::default());
    backend.fail.store(true, Ordering::Relaxed);
    let losses = Arc::new(Losses::default());
    let keeper = keeper(backend.clone(), &losses);
    let ttl = Duration::from_secs(15);
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = lease(1, grant("retried", None, ttl), deadline);
    keeper.keep(&kept);
    let renew_at = TIMING.renew_at(deadline, ttl);
    assert_eq!(
        keeper.shared.book().next_event_of(&kept),
        Some(renew_at),
        "first due at its renewal time"
    );

    // The renewal fails: the next attempt is a retry delay away, sooner
    // than a renewal interval.
    let (renewals, _) = keeper.shared.tick(renew_at);
    let [renewal] = <[Renewal; 1]>::try_from(renewals).ok().unwrap();
    let before = Instant::now();
    renew(keeper.shared.clone(), renewal).await;
    let after = Instant::now();
    let retry = keeper.shared.book().next_event_of(&kept).unwrap();
    assert!(TIMING.retry_delay(ttl) < TIMING.interval(ttl));
    assert!(retry >= before + TIMING.retry_delay(ttl));
    assert!(retry <= after + TIMING.retry_delay(ttl));
    assert!(kept.is_kept(), "a failed renewal is not a loss");

    // The retry goes out when due, and succeeds: back to the interval.
    backend.fail.store(false, Ordering::Relaxed);
    let (renewals, _) = keeper.shared.tick(retry);
    assert_eq!(renewals.len(), 1);
    let sent = Instant::now();
    for renewal in renewals {
        renew(keeper.shared.clone(), renewal).await;
    }
    let next = keeper.shared.book().next_event_of(&kept).unwrap();
    assert!(next >= sent + TIMING.interval(ttl));
    assert_eq!(backend.renewals.load(Ordering::Relaxed), 2);
    assert_eq!(losses.0.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_lease_joining_a_unit_is_renewed_in_time() {
    let backend = Arc::new(Scripted::default());
    let losses = Arc::new(Losses::default());
    let keeper = keeper(backend.clone(), &losses);
    let t0 = Instant::now();
    let (long, short) = (Duration::from_secs(15), Duration::from_secs(3));
    let unit = Some("session-1");

    // A renews at t0 + 5 s; B, joining with a shorter TTL, at t0 + 1 s.
    let a = lease(1, grant("a", unit, long), t0 + long.mul_f64(0.9));
    let b = lease(2, grant("b", unit, short), t0 + short.mul_f64(0.9));
    keeper.keep(&a);
    assert_eq!(
        keeper.shared.book().next_event_of(&a),
        Some(TIMING.renew_at(a.deadline(), long))
    );
    keeper.keep(&b);
    let b_due = TIMING.renew_at(b.deadline(), short);
    assert!(b_due < TIMING.renew_at(a.deadline(), long));
    assert_eq!(keeper.shared.book().next_event_of(&b), Some(b_due));
    let (renewals, _) = keeper.shared.tick(b_due);
    let [renewal] = <[Renewal; 1]>::try_from(renewals).ok().unwrap();
    let mut ids: Vec<u64> = renewal.leases().iter().map(|l| l.id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2], "one renewal for the whole unit");

    // C joins while that renewal is in flight; it must not wait for the
    // unit's next interval (from the renewal: t0 + 2 s) past its own time.
    let c = lease(
        3,
        grant("c", unit, short),
        b_due + Duration::from_millis(2200),
    );
    keeper.keep(&c);
    let c_due = TIMING.renew_at(c.deadline(), short);
    succeed(&keeper, vec![renewal], b_due);
    assert!(c_due < b_due + TIMING.interval(short));
    assert_eq!(keeper.shared.book().next_event_of(&c), Some(c_due));
    let (renewals, _) = keeper.shared.tick(c_due);
    assert_eq!(renewals.len(), 1);
    assert!(renewals[0].leases().iter().any(|l| l.id == 3));
    assert_eq!(renewals[0].leases().len(), 3);
    succeed(&keeper, renewals, c_due);

    // An emptied unit is dropped.
    for lease in [&a, &b, &c] {
        keeper.forget(lease);
    }
    assert_eq!(keeper.shared.book().entries(), 0);
    assert_eq!(losses.0.load(Ordering::Relaxed), 0);
}

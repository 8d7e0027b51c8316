//! The behaviour every backend must show. Each case gets a fresh [`Harness`]
//! and unique lock names; none sleeps to synchronise, none asserts timing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polylock::{Client, ErrorKind, Event, Lease, LockOptions};
use tokio::sync::mpsc;

use crate::harness::{next_event, Harness, EVENT_LIMIT};

const WAIT: Duration = Duration::from_secs(60);

fn mutex(ttl_secs: u64) -> LockOptions {
    LockOptions::mutex().ttl(Duration::from_secs(ttl_secs))
}

/// Takes the mutex `name`, which must be free.
async fn hold(client: &Client, name: &str) -> Lease {
    client
        .lock(name, mutex(15))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("the lock is free")
}

/// True when the mutex `name` is held by someone else right now.
async fn is_busy(client: &Client, name: &str) -> bool {
    let lease = client
        .lock(name, mutex(15))
        .unwrap()
        .try_acquire()
        .await
        .unwrap();
    let busy = lease.is_none();
    if let Some(lease) = lease {
        lease.release().await.unwrap();
    }
    busy
}

/// Waits (bounded) until the mutex `name` is free, takes it and lets it go:
/// proof that nobody holds it any more.
async fn take_and_release(client: &Client, name: &str, why: &str) {
    client
        .lock(name, mutex(15))
        .unwrap()
        .acquire(WAIT)
        .await
        .expect(why)
        .release()
        .await
        .unwrap();
}

pub async fn try_acquire_and_release(h: &Harness) {
    let name = h.name("try");
    let (a, b) = (h.client().await, h.client().await);
    let lease = a
        .lock(&name, mutex(15).value("worker-a"))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("a free lock is taken");
    assert_eq!(lease.name(), name);
    assert_eq!(lease.value(), "worker-a");
    assert!(lease.is_held());
    assert!(lease.time_to_expiration() > Duration::ZERO);
    assert!(lease.time_to_expiration() <= lease.ttl());
    assert!(!lease.needs_renew(), "a fresh lease needs no renewal yet");
    assert_eq!(lease.fencing_token().is_some(), a.capabilities().fencing);
    assert!(is_busy(&b, &name).await);
    lease.release().await.unwrap();
    assert!(!lease.is_held());
    assert_eq!(lease.time_to_expiration(), Duration::ZERO);
    let again = b
        .lock(&name, mutex(15))
        .unwrap()
        .try_acquire()
        .await
        .unwrap();
    again
        .expect("a released lock is free")
        .release()
        .await
        .unwrap();
}

pub async fn one_client_cannot_take_a_mutex_twice(h: &Harness) {
    let name = h.name("reentry");
    let client = h.client().await;
    let lock = client.lock(&name, mutex(15)).unwrap();
    let first = lock.try_acquire().await.unwrap().expect("free");
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "locks are not reentrant"
    );
    first.release().await.unwrap();
}

pub async fn acquire_times_out(h: &Harness) {
    let name = h.name("timeout");
    let (a, b) = (h.client().await, h.client().await);
    let held = hold(&a, &name).await;
    let error = b
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.to_string().contains(&name));
    held.release().await.unwrap();
}

pub async fn waiter_gets_the_lock_on_release(h: &Harness) {
    let name = h.name("handover");
    let a = h.client().await;
    let (b, mut events) = h.observed_client().await;
    let first = hold(&a, &name).await;
    let waiter = {
        let lock = b.lock(&name, mutex(15)).unwrap();
        tokio::spawn(async move { lock.acquire(WAIT).await })
    };
    next_event(&mut events, |e| {
        matches!(e, Event::WaitStarted { .. }).then_some(())
    })
    .await;
    first.release().await.unwrap();
    let second = waiter.await.unwrap().expect("the waiter gets the lock");
    if let (Some(t1), Some(t2)) = (first.fencing_token(), second.fencing_token()) {
        assert!(t2 > t1, "fencing tokens increase: {t1} then {t2}");
    }
    let acquired = next_event(&mut events, |e| match e {
        Event::WaitEnded { acquired, .. } => Some(*acquired),
        _ => None,
    })
    .await;
    assert!(acquired);
    second.release().await.unwrap();
}

pub async fn mutual_exclusion_with_increasing_tokens(h: &Harness) {
    const CLIENTS: usize = 4;
    const TASKS_PER_CLIENT: usize = 2;
    const ROUNDS: usize = 3;
    let name = h.name("exclusion");
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = h.client().await;
        for _ in 0..TASKS_PER_CLIENT {
            let lock = client.lock(&name, mutex(15)).unwrap();
            let (inside, tokens) = (inside.clone(), tokens.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let lease = lock
                        .acquire(WAIT)
                        .await
                        .expect("every contender gets a turn");
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    tokens.lock().unwrap().push(lease.fencing_token());
                    tokio::task::yield_now().await;
                    assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1);
                    lease.release().await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), CLIENTS * TASKS_PER_CLIENT * ROUNDS);
    if tokens[0].is_some() {
        for pair in tokens.windows(2) {
            assert!(
                pair[1] > pair[0],
                "tokens must strictly increase: {tokens:?}"
            );
        }
    }
}

pub async fn semaphore_respects_its_limit(h: &Harness) {
    const LIMIT: u32 = 3;
    let name = h.name("semaphore");
    let options = LockOptions::semaphore(LIMIT).ttl(Duration::from_secs(15));
    let mut clients = Vec::new();
    for _ in 0..LIMIT + 2 {
        clients.push(h.client().await);
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for client in &clients {
        match client
            .lock(&name, options.clone())
            .unwrap()
            .try_acquire()
            .await
            .unwrap()
        {
            Some(lease) => held.push(lease),
            None => refused += 1,
        }
    }
    assert_eq!(held.len(), LIMIT as usize);
    assert_eq!(refused, 2);
    let tokens: std::collections::HashSet<_> = held.iter().map(|l| l.fencing_token()).collect();
    if held[0].fencing_token().is_some() {
        assert_eq!(tokens.len(), held.len(), "every grant has its own token");
    }
    held.pop().unwrap().release().await.unwrap();
    let late = clients[LIMIT as usize]
        .lock(&name, options.clone())
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("a released slot is free");
    held.push(late);
    // Concurrent holders never exceed the limit while contenders cycle.
    for lease in held.drain(..) {
        lease.release().await.unwrap();
    }
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in &clients {
        let lock = client.lock(&name, options.clone()).unwrap();
        let (inside, most) = (inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                let lease = lock.acquire(WAIT).await.expect("a slot frees up");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                assert!(now <= LIMIT as usize, "{now} holders with limit {LIMIT}");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lease.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(Ordering::SeqCst) >= 1);
}

pub async fn limit_mismatch_is_an_error(h: &Harness) {
    let name = h.name("mismatch");
    let b = h.client().await;
    let ttl = Duration::from_secs(15);
    // Every place a holder of limit 3 can occupy is occupied.
    let mut held = Vec::new();
    for _ in 0..3 {
        let holder = h.client().await;
        let lock = holder.lock(&name, LockOptions::semaphore(3).ttl(ttl));
        held.push((lock.unwrap().try_acquire().await.unwrap().unwrap(), holder));
    }
    let error = b
        .lock(&name, LockOptions::semaphore(2).ttl(ttl))
        .unwrap()
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitMismatch, "{error}");
    for (lease, _holder) in held {
        lease.release().await.unwrap();
    }
    if !b.capabilities().idle_limit_resets {
        return; // the server keeps the limit until it forgets the idle lock
    }
    // Once idle, the lock may be used with another limit.
    let other = b
        .lock(&name, LockOptions::semaphore(2).ttl(ttl))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("an idle lock takes a new limit");
    other.release().await.unwrap();
}

pub async fn ttl_expiry_frees_an_abandoned_lease(h: &Harness) {
    let name = h.name("expiry");
    let (a, b) = (h.client().await, h.client().await);
    let lease = a
        .lock(&name, mutex(1))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    lease.abandon();
    let next = b
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(WAIT)
        .await
        .expect("the backend frees a lease nobody renews");
    next.release().await.unwrap();
}

/// With automatic renewal off, only the caller's renewals keep a lease: it
/// ends at its TTL, reported lost, and polylock releases it on the backend
/// — even where another lease of the same client, renewed automatically,
/// keeps their shared renewal unit (a Consul session, a MongoDB renewal
/// session) alive, so only that release can free the lock.
pub async fn a_lease_the_caller_does_not_renew_ends_at_its_ttl(h: &Harness) {
    let (name, other) = (h.name("by-caller"), h.name("by-caller-keep"));
    let (a, b) = (h.client().await, h.client().await);
    let kept = a
        .lock(&other, mutex(2))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("a free lock");
    let lock = a.lock(&name, mutex(2).auto_renew(false)).unwrap();
    assert!(!lock.auto_renew());
    let lease = lock.try_acquire().await.unwrap().expect("a free lock");
    lease.renew().await.expect("the caller renews it");
    let lost = tokio::time::timeout(WAIT, lease.lost())
        .await
        .expect("the unrenewed lease ends")
        .expect("it ends lost, not released");
    assert!(lost.reason.contains("not renewed"), "{}", lost.reason);
    assert!(!lease.is_held());
    let next = b
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(WAIT)
        .await
        .expect("polylock released the unrenewed lease");
    if let (Some(old), Some(new)) = (lease.fencing_token(), next.fencing_token()) {
        assert!(new > old, "token {new} after {old}");
    }
    assert!(kept.is_held(), "{:?}", kept.loss_reason());
    assert_eq!(
        lease.release().await.unwrap_err().kind(),
        ErrorKind::Lost,
        "a release after the end says why"
    );
    next.release().await.unwrap();
    kept.release().await.unwrap();
}

pub async fn keeper_renews_held_leases(h: &Harness) {
    let name = h.name("renewal");
    let (client, mut events) = h.observed_client().await;
    // A short TTL, though not so short that a loaded server (the whole
    // suite runs at once) misses a renewal.
    let lease = client
        .lock(&name, mutex(3))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        let renewed = next_event(&mut events, |e| match e {
            Event::Renewed { .. } => Some(Ok(())),
            Event::Lost { reason, .. } => Some(Err(reason.clone())),
            _ => None,
        })
        .await;
        renewed.unwrap_or_else(|reason| panic!("lost instead of renewed: {reason}"));
    }
    assert!(lease.is_held(), "{:?}", lease.loss_reason());
    lease.renew().await.unwrap();
    lease.release().await.unwrap();
}

pub async fn lost_callback_fires_once_when_revoked(h: &Harness) {
    let name = h.name("revoked");
    let (client, mut events) = h.observed_client().await;
    let lease = hold(&client, &name).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, mut fired) = mpsc::unbounded_channel();
    {
        let (calls, tx) = (calls.clone(), tx.clone());
        lease.on_lost(move |event| {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(event.clone());
        });
    }
    h.revoke(&lease).await;
    let event = tokio::time::timeout(EVENT_LIMIT, fired.recv())
        .await
        .expect("the lost callback fires")
        .unwrap();
    assert_eq!(event.name, name);
    assert_eq!(event.holder, lease.holder());
    assert!(!lease.is_held());
    assert!(!lease.needs_renew(), "a lost lease cannot be renewed");
    assert!(lease.loss_reason().is_some());
    assert_eq!(lease.lost().await.map(|e| e.name), Some(name.clone()));
    next_event(&mut events, |e| {
        matches!(e, Event::Lost { .. }).then_some(())
    })
    .await;
    // Release and renew of a lost lease are typed errors.
    assert_eq!(lease.release().await.unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(lease.renew().await.unwrap_err().kind(), ErrorKind::Lost);
    // A callback registered after the loss runs at once, also exactly once.
    lease.on_lost(move |event| {
        let _ = tx.send(event.clone());
    });
    tokio::time::timeout(EVENT_LIMIT, fired.recv())
        .await
        .expect("a late callback fires")
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the first callback ran exactly once"
    );
    // The lock is free for others.
    let other = h.client().await;
    take_and_release(&other, &name, "a revoked lock is free").await;
}

pub async fn double_release_is_an_error(h: &Harness) {
    let name = h.name("double");
    let client = h.client().await;
    let lease = hold(&client, &name).await;
    lease.release().await.unwrap();
    let error = lease.release().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotHeld, "{error}");
    assert_eq!(lease.renew().await.unwrap_err().kind(), ErrorKind::NotHeld);
}

pub async fn dropping_a_lease_releases_it(h: &Harness) {
    let name = h.name("drop");
    let (a, b) = (h.client().await, h.client().await);
    let lease = hold(&a, &name).await;
    drop(lease);
    take_and_release(&b, &name, "a dropped lease is released").await;
}

pub async fn invalid_names_and_options_are_rejected(h: &Harness) {
    let client = h.client().await;
    for name in ["", "/lead", "trail/", "a//b", "a/../b", "spa ce", "ünï"] {
        let error = client.lock(name, LockOptions::mutex()).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidArgument,
            "{name:?}: {error}"
        );
    }
    let name = h.name("options");
    for options in [
        LockOptions::mutex().ttl(Duration::ZERO),
        LockOptions::mutex().ttl(Duration::from_millis(500)),
        LockOptions::mutex().ttl(polylock::MAX_TTL + Duration::from_secs(1)),
        LockOptions::semaphore(0),
        LockOptions::mutex().value("x".repeat(polylock::MAX_VALUE_LEN + 1)),
    ] {
        let error = client.lock(&name, options.clone()).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidArgument,
            "{options:?}: {error}"
        );
    }
}

pub async fn observers_see_the_lease_lifecycle(h: &Harness) {
    let name = h.name("events");
    let (client, mut events) = h.observed_client().await;
    let lease = hold(&client, &name).await;
    let token = next_event(&mut events, |e| match e {
        Event::Acquired {
            name: n,
            fencing_token,
            ..
        } if *n == name => Some(*fencing_token),
        _ => None,
    })
    .await;
    assert_eq!(token, lease.fencing_token());
    lease.release().await.unwrap();
    next_event(&mut events, |e| {
        matches!(e, Event::Released { name: n, .. } if *n == name).then_some(())
    })
    .await;
}

pub async fn cancelled_acquire_leaves_nothing_behind(h: &Harness) {
    let name = h.name("cancelled");
    let a = h.client().await;
    let (b, mut events) = h.observed_client().await;
    let first = hold(&a, &name).await;
    let lock = b.lock(&name, mutex(15)).unwrap();
    {
        let waiting = lock.acquire_forever();
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => panic!("the lock is held; the wait cannot end"),
            _ = next_event(&mut events, |e| matches!(e, Event::WaitStarted { .. }).then_some(())) => {}
        }
        // Dropping the future here cancels the wait.
    }
    let ended = next_event(&mut events, |e| match e {
        Event::WaitEnded { acquired, .. } => Some(*acquired),
        _ => None,
    })
    .await;
    assert!(!ended, "the cancelled wait ended without the lock");
    first.release().await.unwrap();
    // Nobody is left waiting in the background: a third client gets the lock.
    let c = h.client().await;
    take_and_release(&c, &name, "no cancelled waiter took the lock").await;
}

/// A waiter parked on a busy mutex, then on a full semaphore, sends no more
/// than the backend's budget while the holders keep their leases (through
/// two renewals each, which a polling waiter would show) and, on the
/// semaphore, while another contender comes and goes (changes that free
/// nothing); then it gets the slot its holder gives back.
pub async fn parked_waiter_costs_nothing(h: &Harness) {
    let semaphores = h.client().await.capabilities().semaphores;
    for limit in [1u32, 2].into_iter().filter(|l| *l == 1 || semaphores) {
        let Some((waiter, proxy, mut waiter_events)) = h.counted_client().await else {
            eprintln!("skipped: no network to count on");
            return;
        };
        let budget = h.park_budget();
        let name = h.name("parked");
        let options = LockOptions::semaphore(limit).ttl(Duration::from_secs(3));
        let (holder, mut holder_events) = h.observed_client().await;
        let mut held = Vec::new();
        for _ in 0..limit {
            let lock = holder.lock(&name, options.clone()).unwrap();
            held.push(lock.try_acquire().await.unwrap().expect("a free slot"));
        }
        let lock = waiter.lock(&name, options.clone()).unwrap();
        let waiting = tokio::spawn(async move { lock.acquire(WAIT).await });
        next_event(&mut waiter_events, |e| {
            matches!(e, Event::WaitStarted { .. }).then_some(())
        })
        .await;
        let parked = proxy.counts();
        for _ in 0..2 * limit {
            next_event(&mut holder_events, |e| {
                matches!(e, Event::Renewed { .. }).then_some(())
            })
            .await;
        }
        let mut changes = 0;
        if limit > 1 {
            // A third contender enters and leaves (Consul: its contender key).
            let other = h.client().await;
            let lock = other.lock(&name, options.clone()).unwrap();
            assert!(
                lock.try_acquire().await.unwrap().is_none(),
                "the semaphore is full"
            );
            changes += 2;
        }
        let spent = proxy.counts().since(parked);
        eprintln!("limit {limit}: parked waiter sent {spent:?} ({changes} changes)");
        assert!(
            spent.writes <= budget.writes,
            "limit {limit}: a parked waiter wrote {spent:?}; budget {budget:?}"
        );
        if let Some(reads) = budget.reads {
            assert!(
                spent.reads <= reads + changes * budget.reads_per_change,
                "limit {limit}: a parked waiter read {spent:?} over {changes} changes; budget {budget:?}"
            );
        }
        held.pop().unwrap().release().await.unwrap();
        let lease = tokio::time::timeout(EVENT_LIMIT, waiting)
            .await
            .expect("the waiter gets the freed slot")
            .unwrap()
            .expect("the waiter gets the freed slot");
        lease.release().await.unwrap();
        for lease in held {
            lease.release().await.unwrap();
        }
    }
}

/// The next event of a watched lock (bounded wait).
async fn next_lock_event(events: &mut polylock::LockEvents) -> polylock::LockEvent {
    tokio::time::timeout(EVENT_LIMIT, events.next())
        .await
        .expect("the event arrives")
        .expect("the stream stays open")
}

pub async fn lock_event_stream_shows_every_client(h: &Harness) {
    use polylock::LockEventKind::{Acquired, Expired, Released};
    let name = h.name("stream");
    let (a, b, watcher) = (h.client().await, h.client().await, h.client().await);
    let mut events = watcher.watch(&name).unwrap();
    events.ready().await;
    let lease = hold(&a, &name).await;
    let event = next_lock_event(&mut events).await;
    assert_eq!(
        (event.kind, event.holder.as_str()),
        (Acquired, lease.holder())
    );
    assert_eq!(event.fencing_token, lease.fencing_token());
    lease.release().await.unwrap();
    let event = next_lock_event(&mut events).await;
    assert_eq!(
        (event.kind, event.holder.as_str()),
        (Released, lease.holder())
    );

    // A lease left to expire shows as Expired once another holder takes over.
    let abandoned = a
        .lock(&name, mutex(1))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let gone = abandoned.holder().to_string();
    assert_eq!(next_lock_event(&mut events).await.kind, Acquired);
    abandoned.abandon();
    let taker = b
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(WAIT)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = next_lock_event(&mut events).await;
        seen.push((event.kind, event.holder));
    }
    assert!(seen.contains(&(Expired, gone)), "{seen:?}");
    assert!(
        seen.contains(&(Acquired, taker.holder().to_string())),
        "{seen:?}"
    );
    taker.release().await.unwrap();
}

pub async fn status_list_and_operator_release(h: &Harness) {
    let name = h.name("inspect");
    let client = h.client().await;
    let other = h.client().await;
    assert!(other.status(&name).await.unwrap().is_free());
    let lease = client
        .lock(&name, mutex(15).value("worker-7"))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("the lock is free");
    // Another client sees the holder, its value and token.
    let status = other.status(&name).await.unwrap();
    assert_eq!(status.limit, Some(1));
    assert_eq!(status.holders.len(), 1, "{status:?}");
    let holder = &status.holders[0];
    assert_eq!(holder.holder, lease.holder());
    assert_eq!(holder.value, "worker-7");
    if let (Some(seen), Some(own)) = (holder.fencing_token, lease.fencing_token()) {
        assert_eq!(seen, own);
    }
    let prefix = name.rsplit_once('/').unwrap().0.to_string() + "/";
    assert!(other.list(&prefix).await.unwrap().contains(&name));
    // Renewal by holder id, from another client.
    other
        .renew_holder(&name, lease.holder(), Duration::from_secs(15))
        .await
        .unwrap();
    let nobody = other
        .renew_holder(&name, "no-such-holder", Duration::from_secs(15))
        .await;
    assert_eq!(nobody.unwrap_err().kind(), ErrorKind::NotHeld);
    assert_eq!(
        other
            .release_holder(&name, "no-such-holder")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotHeld
    );
    // The operator's force release: the holder learns it lost the lease.
    assert_eq!(other.force_release(&name).await.unwrap(), 1);
    let lost = tokio::time::timeout(EVENT_LIMIT, lease.lost())
        .await
        .expect("the holder learns of the force release");
    assert!(lost.is_some());
    assert!(other.status(&name).await.unwrap().is_free());
    assert!(!other.list(&prefix).await.unwrap().contains(&name));
    let next = hold(&other, &name).await;
    assert!(next.fencing_token() > lease.fencing_token());
    next.release().await.unwrap();
    // Bad input is typed.
    assert_eq!(
        other.status("bad name").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        other.list("a//b").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

pub async fn registry_registers_looks_up_and_unregisters(h: &Harness) {
    let namespace = h.name("registry");
    let client = h.client().await;
    let other = h.client().await;
    let registry = client.registry(&namespace).unwrap();
    let seen_by_other = other.registry(&namespace).unwrap();
    let mut events = seen_by_other.events().ok();
    if let Some(events) = &mut events {
        events.ready().await;
    }
    registry.register("db", "10.0.0.5:5432").await.unwrap();
    registry.register("cache", "10.0.0.6:6379").await.unwrap();
    assert_eq!(
        seen_by_other.whereis("db").await.unwrap().as_deref(),
        Some("10.0.0.5:5432")
    );
    assert_eq!(seen_by_other.whereis("nobody").await.unwrap(), None);
    // Taken, by this client or another.
    let again = registry.register("db", "elsewhere").await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);
    let taken = seen_by_other.register("db", "elsewhere").await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    assert!(taken.to_string().contains("10.0.0.5:5432"), "{taken}");
    assert_eq!(
        seen_by_other.list().await.unwrap(),
        vec![
            ("cache".to_string(), "10.0.0.6:6379".to_string()),
            ("db".to_string(), "10.0.0.5:5432".to_string()),
        ]
    );
    // Only the registering client can unregister.
    assert_eq!(
        seen_by_other.unregister("db").await.unwrap_err().kind(),
        ErrorKind::NotHeld
    );
    registry.unregister("db").await.unwrap();
    assert_eq!(seen_by_other.whereis("db").await.unwrap(), None);
    seen_by_other.register("db", "10.0.0.9:5432").await.unwrap();
    if let Some(events) = &mut events {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let event = tokio::time::timeout(EVENT_LIMIT, events.next())
                .await
                .unwrap_or_else(|_| panic!("registry events arrive; seen {seen:?}"))
                .unwrap();
            seen.push((event.name, event.registered));
        }
        assert_eq!(
            seen,
            [
                ("db".to_string(), true),
                ("cache".to_string(), true),
                ("db".to_string(), false),
                ("db".to_string(), true),
            ]
        );
    }
    assert_eq!(
        client.registry("bad name").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        registry.register("a//b", "x").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    registry.unregister("cache").await.unwrap();
    seen_by_other.unregister("db").await.unwrap();
}

pub async fn metrics_count_the_lease_lifecycle(h: &Harness) {
    let name = h.name("metrics");
    let metrics = Arc::new(polylock::metrics::Metrics::new());
    let client = h
        .client_with(|options| options.observers.push(metrics.clone()))
        .await;
    let lease = hold(&client, &name).await;
    lease.renew().await.unwrap();
    lease.release().await.unwrap();
    let timed_out = client
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(Duration::from_millis(1))
        .await;
    // Free, so granted at once; hold it and time a second client out.
    let held = timed_out.unwrap();
    let other = h
        .client_with(|options| options.observers.push(metrics.clone()))
        .await;
    let refused = other
        .lock(&name, mutex(15))
        .unwrap()
        .acquire(Duration::from_secs(2))
        .await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Timeout);
    held.release().await.unwrap();
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.acquisitions, 2);
    assert_eq!(snapshot.releases, 2);
    assert!(snapshot.renewals >= 1);
    assert_eq!(snapshot.losses, 0);
    if client.capabilities().server_wait {
        // Every acquire that may wait is one call the server may park: it
        // counts as a wait whether or not the lock was free.
        assert_eq!(snapshot.waits, 2);
        assert_eq!(snapshot.waits_abandoned, 1);
    } else {
        // The refused acquire waited unless its first attempt outlasted the
        // timeout; either way every wait ended without the lock.
        assert!(snapshot.waits <= 1);
        assert_eq!(snapshot.waits_abandoned, snapshot.waits);
    }
    assert_eq!(snapshot.wait_time.count, snapshot.waits);
    assert_eq!(snapshot.acquire_latency.count, 2);
    assert_eq!(snapshot.hold_time.count, 2);
    let text = metrics.render_prometheus();
    assert!(text.contains("polylock_acquisitions_total 2\n"), "{text}");
    assert!(
        text.contains("# TYPE polylock_hold_seconds histogram"),
        "{text}"
    );
}

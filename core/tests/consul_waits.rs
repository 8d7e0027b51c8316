//! Consul-only costs of waiting, counted at a proxy in front of a real
//! agent (never timed): many waiters of one client share one blocking query
//! and make one attempt per freed slot, so each handoff costs the same
//! writes however many wait; 500 waiters plus 500 held leases on one client
//! stay within the agent's default `http_max_conns_per_client` (no 429, no
//! lost lease); an idle session is renewed and reused, not replaced.
//!
//! Needs `POLYLOCK_TEST_CONSUL_URL` (`tests/with-servers.sh` sets it; in CI
//! a missing one fails the test).

#[path = "support/counted_client.rs"]
mod counted_client;
#[path = "support/counting_proxy.rs"]
mod counting_proxy;
#[path = "support/env.rs"]
mod env;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use counted_client::{counted, events};
use counting_proxy::Counts;
use polylock::{Client, Event, Lease, LockOptions};

const WAIT: Duration = Duration::from_secs(120);

fn consul_url() -> Option<String> {
    env::server_env("POLYLOCK_TEST_CONSUL_URL", true)
}

fn unique(base: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "waits/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `waiters` waiters of one client park on a lock a second client holds;
/// then each one in turn gets it and gives it back. Returns what the
/// waiters' client sent from the first release on, and the handoffs made.
async fn handoffs(url: &str, limit: u32, waiters: usize) -> Counts {
    let name = unique("herd");
    let options = LockOptions::semaphore(limit).ttl(Duration::from_secs(60));
    let holder = Client::connect(url).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..limit {
        let lock = holder.lock(&name, options.clone()).unwrap();
        held.push(lock.try_acquire().await.unwrap().expect("a free slot"));
    }
    let (client, proxy, mut seen) = counted(url).await;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..waiters {
        let lock = client.lock(&name, options.clone()).unwrap();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let lease = lock.acquire(WAIT).await.expect("every waiter gets a slot");
            done.fetch_add(1, Ordering::SeqCst);
            lease.release().await.expect("a held slot is given back");
        }));
    }
    events(&mut seen, waiters, |e| {
        matches!(e, Event::WaitStarted { .. })
    })
    .await;
    let before = proxy.counts();
    // One slot frees; the waiters pass it on among themselves.
    held.pop().unwrap().release().await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let spent = proxy.counts().since(before);
    for lease in held {
        lease.release().await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), waiters as u64);
    spent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_of_waiters_writes_twice_per_handoff() {
    let Some(url) = consul_url() else { return };
    for limit in [1, 2] {
        for waiters in [1, 16] {
            let spent = handoffs(&url, limit, waiters).await;
            let per_handoff = spent.writes as f64 / waiters as f64;
            eprintln!(
                "limit {limit}, {waiters} waiters: {spent:?}, {per_handoff} writes per handoff"
            );
            // Each handoff: the winner's take and its release. No attempt
            // that loses, however many wait.
            assert_eq!(
                spent.writes,
                2 * waiters as u64,
                "limit {limit}, {waiters} waiters: {spent:?}"
            );
            // Reads: the shared query returns once per change of the key
            // (the take and the release of each handoff) and is sent again.
            assert!(
                spent.reads <= 4 * waiters as u64 + 4,
                "limit {limit}, {waiters} waiters: {spent:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_waiters_and_leases_stay_within_the_connection_cap() {
    const N: usize = 500;
    let Some(url) = consul_url() else { return };
    let (client, proxy, mut seen) = counted(&url).await;
    let prefix = unique("cap");
    let names: Vec<String> = (0..N).map(|i| format!("{prefix}/{i}")).collect();
    let options = LockOptions::mutex().ttl(Duration::from_secs(30));
    let held: Vec<Lease> = futures_util::future::join_all(names.iter().map(|name| {
        let lock = client.lock(name, options.clone()).unwrap();
        let proxy = &proxy;
        async move {
            match lock.try_acquire().await {
                Ok(lease) => lease.expect("a free name"),
                Err(e) => panic!(
                    "taking a free name: {e}; at most {} connections, {} answers 429",
                    proxy.most_connections(),
                    proxy.too_many_requests()
                ),
            }
        }
    }))
    .await;
    let waiters: Vec<_> = names
        .iter()
        .map(|name| {
            let lock = client.lock(name, options.clone()).unwrap();
            tokio::spawn(async move { lock.acquire(WAIT).await })
        })
        .collect();
    events(&mut seen, N, |e| matches!(e, Event::WaitStarted { .. })).await;
    futures_util::future::join_all(held.iter().map(|lease| lease.release()))
        .await
        .into_iter()
        .for_each(|released| released.expect("a held lease is given back"));
    let mut granted = Vec::new();
    for waiter in waiters {
        let outcome = waiter.await.unwrap();
        let counts = (proxy.most_connections(), proxy.too_many_requests());
        granted.push(outcome.unwrap_or_else(|e| {
            panic!("every waiter gets its name once it is freed: {e}; (most connections, 429s): {counts:?}")
        }));
    }
    assert!(granted.iter().all(Lease::is_held));
    futures_util::future::join_all(granted.iter().map(|lease| lease.release()))
        .await
        .into_iter()
        .for_each(|released| released.expect("a granted lease is given back"));
    let mut lost = 0;
    while let Ok(event) = seen.try_recv() {
        lost += matches!(event, Event::Lost { .. }) as usize;
    }
    eprintln!(
        "{N} leases + {N} waiters: {:?}, at most {} connections at once, {} answers 429",
        proxy.counts(),
        proxy.most_connections(),
        proxy.too_many_requests()
    );
    assert_eq!(lost, 0, "no lease was lost");
    assert_eq!(proxy.too_many_requests(), 0, "consul refused no request");
    // In flight at most the cap, idle at most 16, plus a few the client
    // closed that the proxy has not seen end yet: well under Consul's 200.
    assert!(
        proxy.most_connections() <= polylock::backends::consul::DEFAULT_MAX_CONNECTIONS + 32,
        "{} connections at once",
        proxy.most_connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_renewed_and_reused() {
    let Some(url) = consul_url() else { return };
    let client = Client::connect(&url).await.unwrap();
    let ttl = Duration::from_secs(2);
    let lock = client
        .lock(&unique("idle"), LockOptions::mutex().ttl(ttl))
        .unwrap();
    let first = lock.try_acquire().await.unwrap().expect("a free name");
    let session = first.holder().to_string();
    first.release().await.unwrap();
    // The behaviour under test is what happens after half a TTL of idling;
    // nothing to await but the time itself.
    tokio::time::sleep(ttl / 2 + Duration::from_millis(200)).await;
    let second = lock.try_acquire().await.unwrap().expect("a free name");
    assert_eq!(
        second.holder(),
        session,
        "the idle session was renewed and lent again, not replaced"
    );
    second.release().await.unwrap();
}

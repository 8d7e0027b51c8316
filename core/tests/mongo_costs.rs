//! MongoDB-only costs, counted at a proxy in front of a real FerretDB
//! (never timed): a handoff costs the same requests whether 1 or 16
//! waiters of one client wait (a release hands the lease to one waiter); one client holding 2,000 leases for
//! three TTLs loses none and renews them with a few requests per round,
//! whatever their count; a forced release stays released while its holder
//! keeps renewing.
//!
//! Needs `POLYLOCK_TEST_FERRETDB_URL` (`tests/with-servers.sh` sets it; in
//! CI a missing one fails the test). `POLYLOCK_TEST_LEASES` changes the
//! lease count of the hold.

#[path = "support/counted_client.rs"]
mod counted_client;
#[path = "support/counting_proxy.rs"]
mod counting_proxy;
#[path = "support/env.rs"]
mod env;
#[path = "support/handoffs.rs"]
mod handoffs;
#[path = "support/many_leases.rs"]
mod many_leases;
#[path = "support/own_collection.rs"]
mod own_collection;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use counted_client::{counted, events};
use polylock::{Client, Event, LockOptions};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(120);

fn ferretdb_url() -> Option<String> {
    env::server_env("POLYLOCK_TEST_FERRETDB_URL", true)
}

fn unique(base: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "costs/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_costs_the_same_with_1_or_16_waiters() {
    let Some(url) = ferretdb_url() else {
        return;
    };
    let one = handoffs::requests_per_handoff(&url, 1).await;
    let sixteen = handoffs::requests_per_handoff(&url, 16).await;
    // A handoff within one client: the insert of the waiter's generation
    // (the release hands the lease over), its events, the head hint at
    // times, and the events cursor's reads.
    assert!(one <= 6.0, "{one} requests per handoff with one waiter");
    assert!(
        sixteen <= one + 2.0,
        "16 waiters cost {sixteen} requests per handoff, one waiter {one}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_2000_leases_for_three_ttls() {
    let Some(url) = ferretdb_url() else {
        return;
    };
    let leases: usize = std::env::var("POLYLOCK_TEST_LEASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let ttl = Duration::from_secs(6);
    // Its thousands of names stay out of the collection other tests use.
    const COLLECTION: &str = "polylock_hold";
    let own = own_collection::own_collection(&url, COLLECTION);
    let (client, proxy, mut client_events) = counted(&own).await;
    let prefix = unique("hold");
    let held =
        many_leases::take_many(&client, &prefix, leases, LockOptions::mutex().ttl(ttl)).await;
    assert_eq!(held.len(), leases);
    // Hold until every lease was renewed nine times more: a renewal every
    // third of the TTL, so three TTLs (counted from the renewals, not the
    // clock). Renewals while the leases were being taken do not count.
    while client_events.try_recv().is_ok() {}
    let before = proxy.counts();
    let rounds = 9;
    events(&mut client_events, leases * rounds, |e| {
        matches!(e, Event::Renewed { .. })
    })
    .await;
    let spent = proxy.counts().since(before);
    let lost = held.iter().filter(|l| !l.is_held()).count();
    eprintln!("{leases} leases, {rounds} renewals each: {spent:?}, lost {lost}");
    assert_eq!(lost, 0, "leases lost while held");
    // Per round: one write for the unit and one read for what ended its
    // leases, plus the events cursor's reads; O(leases / 500) at most.
    let per_round = (leases / 500).max(1) as u64 + 4;
    assert!(
        spent.writes <= per_round * rounds as u64,
        "{spent:?} over {rounds} rounds for {leases} leases"
    );
    futures_util::future::join_all(held.iter().map(|l| l.release())).await;
    drop((held, client));
    own_collection::empty_own_collection(&url, COLLECTION).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_release_stays_released_while_its_holder_renews() {
    let Some(url) = ferretdb_url() else {
        return;
    };
    let (holder, operator, taker) = (
        Client::connect(&url).await.unwrap(),
        Client::connect(&url).await.unwrap(),
        Client::connect(&url).await.unwrap(),
    );
    for round in 0..10 {
        let name = unique(&format!("forced-{round}"));
        let options = LockOptions::mutex().ttl(Duration::from_secs(1));
        let lease = holder
            .lock(&name, options.clone())
            .unwrap()
            .try_acquire()
            .await
            .unwrap()
            .expect("a free lock");
        let (lost_tx, mut lost) = mpsc::unbounded_channel();
        lease.on_lost(move |event| {
            let _ = lost_tx.send(event.reason.clone());
        });
        // The holder's keeper renews every third of a second; the operator
        // renews the same document as fast as it can while it releases it.
        let renewing = {
            let (operator, name, id) = (operator.clone(), name.clone(), lease.holder().to_string());
            tokio::spawn(async move {
                for _ in 0..50 {
                    let _ = operator
                        .renew_holder(&name, &id, Duration::from_secs(1))
                        .await;
                }
            })
        };
        tokio::task::yield_now().await;
        operator
            .release_holder(&name, lease.holder())
            .await
            .expect("the operator releases the lease");
        renewing.await.unwrap();
        let status = operator.status(&name).await.unwrap();
        assert!(status.holders.is_empty(), "round {round}: {status:?}");
        let next = taker
            .lock(&name, options)
            .unwrap()
            .try_acquire()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: the released lock is free"));
        assert!(next.fencing_token() > lease.fencing_token());
        // The holder learns it at its next renewal.
        let reason = tokio::time::timeout(WAIT, lost.recv())
            .await
            .expect("the holder hears of the forced release")
            .expect("the lease lives");
        assert!(!lease.is_held(), "round {round}: {reason}");
        next.release().await.unwrap();
    }
}

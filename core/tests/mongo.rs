//! MongoDB-backend behaviour beyond the conformance suite, against a real
//! FerretDB: URL options choose the database and collections, the lease
//! documents are where the docs say, and the event tail (and with it prompt
//! wake-ups) survives a server restart.
//!
//! Needs `POLYLOCK_TEST_FERRETDB_URL` and, for the restart case,
//! `POLYLOCK_TEST_FERRETDB_RESTART_URL` + `POLYLOCK_TEST_FERRETDB_RESTART_DIR`
//! (a server this test may restart); `tests/with-servers.sh` sets them. In CI
//! a missing variable fails the test.

#[path = "support/env.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use polylock::{Client, ClientOptions, Event, LockEventKind, LockOptions};

/// A required server setting (see `support/env.rs`).
fn env(var: &str) -> Option<String> {
    support::server_env(var, true)
}

fn unique(base: &str) -> String {
    format!("mongo/{base}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_options_choose_database_and_collections() {
    let Some(url) = env("POLYLOCK_TEST_FERRETDB_URL") else {
        return;
    };
    let database = format!("polylock_opts_{}", std::process::id());
    let custom = format!(
        "{}{database}?collection=leases&events_collection=lease_events",
        url.trim_end_matches('/').to_string() + "/"
    );
    let client = Client::connect(&custom).await.unwrap();
    let mut events = client.watch(&unique("options")).unwrap();
    let lease = client
        .lock(&unique("options"), LockOptions::mutex().value("worker-7"))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap();

    let raw = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = raw.database(&database);
    let stored = db
        .collection::<Document>("leases")
        .find_one(doc! { "_id": lease.holder() })
        .await
        .unwrap()
        .expect("the lease document is in the chosen collection");
    assert_eq!(stored.get_str("value").unwrap(), "worker-7");
    assert!(!stored.get_bool("released").unwrap());
    let event = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, LockEventKind::Acquired);
    let logged = db
        .collection::<Document>("lease_events")
        .find_one(doc! { "holder": lease.holder() })
        .await
        .unwrap();
    assert!(
        logged.is_some(),
        "the event is in the chosen events collection"
    );

    lease.release().await.unwrap();
    // A release is an insert: the next generation, as a release marker.
    let (slot, gen) = lease.holder().rsplit_once('/').unwrap();
    let marker = format!("{slot}/{:020}", gen.parse::<i64>().unwrap() + 1);
    let stored = db
        .collection::<Document>("leases")
        .find_one(doc! { "_id": &marker })
        .await
        .unwrap()
        .expect("the release marker is in the chosen collection");
    assert!(stored.get_bool("released").unwrap());
    raw.database(&database).drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_still_wake_promptly_after_a_server_restart() {
    let (Some(url), Some(dir)) = (
        env("POLYLOCK_TEST_FERRETDB_RESTART_URL"),
        env("POLYLOCK_TEST_FERRETDB_RESTART_DIR"),
    ) else {
        return;
    };
    let name = unique("restart");
    // The holder's TTL outlasts the waiter's patience: only the release
    // event (through a reopened tail) can get the waiter the lock in time.
    let holder = Client::connect(&url).await.unwrap();
    let lease = holder
        .lock(&name, LockOptions::mutex().ttl(Duration::from_secs(300)))
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let (tx, mut waiting) = tokio::sync::mpsc::unbounded_channel();
    let waiter = Client::from_options(ClientOptions::new(&url).observer(Arc::new(
        move |e: &Event| {
            if matches!(e, Event::WaitStarted { .. }) {
                let _ = tx.send(());
            }
        },
    )))
    .await
    .unwrap();
    let lock = waiter.lock(&name, LockOptions::mutex()).unwrap();
    let contender = tokio::spawn(async move { lock.acquire(Duration::from_secs(90)).await });
    tokio::time::timeout(Duration::from_secs(60), waiting.recv())
        .await
        .expect("the waiter starts waiting");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/servers/ferretdb.sh");
    let status = tokio::process::Command::new("bash")
        .args([script, "restart", &dir])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "the server restarts");

    // The driver reconnects; the release is written and its event tailed.
    let mut released = lease.release().await;
    for _ in 0..20 {
        match &released {
            Err(error) if error.is_transient() => released = lease.release().await,
            _ => break,
        }
    }
    released.expect("the holder releases after the restart");
    let next = contender
        .await
        .unwrap()
        .expect("the waiter is woken by the release, long before any expiry");
    next.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutexes_and_semaphores_refuse_each_other() {
    let Some(url) = env("POLYLOCK_TEST_FERRETDB_URL") else {
        return;
    };
    let (a, b) = (
        Client::connect(&url).await.unwrap(),
        Client::connect(&url).await.unwrap(),
    );
    for round in 0..4 {
        let name = unique(&format!("mixed-{round}"));
        // A semaphore holder in every slot, so one sits beyond slot 0.
        let wide = a.lock(&name, LockOptions::semaphore(3)).unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(wide.try_acquire().await.unwrap().unwrap());
        }
        let error = b
            .lock(&name, LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), polylock::ErrorKind::LimitMismatch, "{error}");
        for lease in held {
            lease.release().await.unwrap();
        }
        // And the other way round.
        let mutex = b.lock(&name, LockOptions::mutex()).unwrap();
        let lease = mutex.try_acquire().await.unwrap().expect("idle again");
        let error = wide.try_acquire().await.unwrap_err();
        assert_eq!(error.kind(), polylock::ErrorKind::LimitMismatch, "{error}");
        lease.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_acquisitions_never_mix_limits() {
    let Some(url) = env("POLYLOCK_TEST_FERRETDB_URL") else {
        return;
    };
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(Client::connect(&url).await.unwrap());
    }
    for round in 0..30 {
        let name = unique(&format!("race-{round}"));
        let attempts = clients.iter().enumerate().map(|(i, client)| {
            let limit = 1 + (i as u32 % 3);
            let lock = client.lock(&name, LockOptions::semaphore(limit)).unwrap();
            async move { (limit, lock.try_acquire().await) }
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let mut limits = std::collections::BTreeSet::new();
        let mut leases = Vec::new();
        for (limit, outcome) in outcomes {
            match outcome {
                Ok(Some(lease)) => {
                    limits.insert(limit);
                    leases.push(lease);
                }
                Ok(None) => {}
                Err(error) => {
                    assert_eq!(error.kind(), polylock::ErrorKind::LimitMismatch, "{error}")
                }
            }
        }
        assert!(
            limits.len() <= 1,
            "round {round}: held with limits {limits:?}"
        );
        for lease in leases {
            lease.release().await.unwrap();
        }
    }
}

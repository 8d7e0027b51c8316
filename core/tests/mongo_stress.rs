//! Concurrency stress on the MongoDB backend (FerretDB in CI; real MongoDB
//! too when `POLYLOCK_TEST_MONGODB_URL` is set): 16 contenders × 200
//! acquisitions of one mutex, some of them left to expire instead of being
//! released, with zero overlapping holds and strictly increasing fencing
//! tokens. `POLYLOCK_STRESS_ROUNDS` changes the acquisitions per contender.

#[path = "support/env.rs"]
mod env;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use env::server_env;
use polylock::{Client, LockEventKind, LockOptions};

const CONTENDERS: usize = 16;
/// Contenders that let one of their leases expire instead of releasing it.
const EXPIRING: usize = 4;
const WAIT: Duration = Duration::from_secs(120);

fn rounds() -> usize {
    std::env::var("POLYLOCK_STRESS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferretdb_contenders_never_overlap() {
    if let Some(url) = server_env("POLYLOCK_TEST_FERRETDB_URL", true) {
        stress(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_contenders_never_overlap() {
    if let Some(url) = server_env("POLYLOCK_TEST_MONGODB_URL", false) {
        stress(&url).await;
    }
}

async fn stress(url: &str) {
    let rounds = rounds();
    let name = format!("stress/{}-{}", std::process::id(), rounds);
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::with_capacity(CONTENDERS * rounds)));
    let watcher = Client::connect(url).await.unwrap();
    let mut events = watcher.watch(&name).unwrap();
    // Read the stream while the contenders run, so none of it is skipped
    // for falling behind: counts the expiries seen.
    let (expired_tx, mut expired_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if event.kind == LockEventKind::Expired {
                let _ = expired_tx.send(());
            }
        }
    });
    let mut tasks = Vec::new();
    for contender in 0..CONTENDERS {
        let client = Client::connect(url).await.unwrap();
        let steady = client
            .lock(&name, LockOptions::mutex().ttl(Duration::from_secs(30)))
            .unwrap();
        let short = client
            .lock(&name, LockOptions::mutex().ttl(Duration::from_secs(1)))
            .unwrap();
        let (inside, tokens) = (inside.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                // A few contenders, once each, take the lock and then stop
                // renewing it, as a crashed holder would.
                let expire = contender < EXPIRING && round == rounds / 2;
                let lock = if expire { &short } else { &steady };
                let lease = lock
                    .acquire(WAIT)
                    .await
                    .expect("every contender gets its turns");
                let before = inside.fetch_add(1, Ordering::SeqCst);
                assert_eq!(before, 0, "two holders at once");
                tokens.lock().unwrap().push(lease.fencing_token().unwrap());
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                if expire {
                    lease.abandon();
                } else {
                    lease.release().await.expect("a held lease releases");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let tokens = std::mem::take(&mut *tokens.lock().unwrap());
    assert_eq!(tokens.len(), CONTENDERS * rounds);
    for pair in tokens.windows(2) {
        assert!(
            pair[1] > pair[0],
            "fencing tokens must strictly increase: {pair:?}"
        );
    }
    // Every abandoned lease was taken over after it expired.
    for _ in 0..EXPIRING {
        tokio::time::timeout(WAIT, expired_rx.recv())
            .await
            .expect("every expiry is reported")
            .expect("the stream stays open");
    }
    reader.abort();
}

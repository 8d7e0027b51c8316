//! MongoDB-backend latency on a real server (FerretDB in `tests/bench.sh`):
//!
//! - uncontended acquire + release with polylock vs the raw floor, one
//!   `insert` plus one `update` of a document with the same driver;
//! - handoff: from the moment a holder's release call starts to the moment
//!   a waiting client (already parked, told by its WaitStarted event) holds
//!   the lock.
//!
//! ```text
//! tests/bench.sh
//! POLYLOCK_TEST_FERRETDB_URL=mongodb://127.0.0.1:27017/ cargo bench -p polylock --bench mongo_latency
//! ```
//! `POLYLOCK_BENCH_ITERATIONS` sets the sample count (default 200).

#[path = "support/stats.rs"]
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Document};
use polylock::{Client, ClientOptions, Event, LockOptions};

const WARMUP: usize = 20;

fn main() {
    let Some(url) = std::env::var("POLYLOCK_TEST_FERRETDB_URL")
        .or_else(|_| std::env::var("POLYLOCK_TEST_MONGODB_URL"))
        .ok()
    else {
        eprintln!("set POLYLOCK_TEST_FERRETDB_URL (tests/bench.sh does) to run this bench");
        return;
    };
    let iterations = stats::iterations(200);
    stats::runtime().block_on(run(&url, iterations));
}

async fn run(url: &str, iterations: usize) {
    let suffix = format!("{}", std::process::id());
    let client = Client::connect(url).await.unwrap();
    let lock = client
        .lock(&format!("bench/uncontended-{suffix}"), LockOptions::mutex())
        .unwrap();
    let raw = mongodb::Client::with_uri_str(url).await.unwrap();
    let raw = raw.database("polylock").collection::<Document>("bench_raw");

    let (mut t_ours, mut t_raw) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + iterations {
        let started = Instant::now();
        let lease = lock.try_acquire().await.unwrap().expect("uncontended");
        lease.release().await.unwrap();
        let ours = started.elapsed();

        let started = Instant::now();
        let id = format!("raw-{suffix}-{i}");
        raw.insert_one(doc! { "_id": &id, "released": false })
            .await
            .unwrap();
        raw.update_one(doc! { "_id": &id }, doc! { "$set": { "released": true } })
            .await
            .unwrap();
        let floor = started.elapsed();
        if i >= WARMUP {
            t_ours.push(ours);
            t_raw.push(floor);
        }
    }
    let handoffs = handoff(url, &suffix, iterations).await;

    let (m_ours, m_raw) = (stats::median(&mut t_ours), stats::median(&mut t_raw));
    let mut handoffs = handoffs;
    let m_handoff = stats::median(&mut handoffs);
    println!(
        "mongodb backend ({}), {iterations} samples each",
        polylock::url::redact(url)
    );
    println!(
        "  uncontended acquire+release   median {:>9.1?}  p90 {:>9.1?}",
        m_ours,
        stats::p90(&t_ours)
    );
    println!(
        "  raw floor (insert + update)   median {:>9.1?}  p90 {:>9.1?}",
        m_raw,
        stats::p90(&t_raw)
    );
    println!(
        "  ratio polylock/raw floor (medians): {:.2}",
        m_ours.as_secs_f64() / m_raw.as_secs_f64()
    );
    println!(
        "  handoff release -> waiter holds median {:>9.1?}  p90 {:>9.1?}",
        m_handoff,
        stats::p90(&handoffs)
    );
}

/// Release-to-held latency with a waiter parked in a second client.
async fn handoff(url: &str, suffix: &str, iterations: usize) -> Vec<Duration> {
    let name = format!("bench/handoff-{suffix}");
    let holder = Client::connect(url).await.unwrap();
    let (tx, mut waiting) = tokio::sync::mpsc::unbounded_channel();
    let waiter =
        Client::from_options(ClientOptions::new(url).observer(Arc::new(move |e: &Event| {
            if matches!(e, Event::WaitStarted { .. }) {
                let _ = tx.send(());
            }
        })))
        .await
        .unwrap();
    let held_lock = holder.lock(&name, LockOptions::mutex()).unwrap();
    let waiting_lock = waiter.lock(&name, LockOptions::mutex()).unwrap();
    let mut samples = Vec::new();
    for i in 0..WARMUP + iterations {
        let lease = held_lock.try_acquire().await.unwrap().expect("free");
        let contender = {
            let lock = waiting_lock.clone();
            tokio::spawn(async move {
                let lease = lock.acquire(Duration::from_secs(60)).await.unwrap();
                (Instant::now(), lease)
            })
        };
        waiting.recv().await.unwrap();
        let released = Instant::now();
        lease.release().await.unwrap();
        let (held, next) = contender.await.unwrap();
        next.release().await.unwrap();
        if i >= WARMUP {
            samples.push(held - released);
        }
    }
    samples
}

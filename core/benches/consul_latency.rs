//! Uncontended acquire + release latency on a real Consul agent: polylock's
//! mutex against the raw floor, two plain requests with a session made in
//! advance (`PUT /v1/kv/K?acquire=S&flags=…`, `PUT /v1/kv/K?release=S&flags=…`,
//! same reqwest/rustls stack), interleaved in one run so both see the same
//! machine. `memory://` is measured too, as the cost of the API itself.
//!
//! ```text
//! tests/bench.sh                  # starts Consul, runs this, stops Consul
//! POLYLOCK_TEST_CONSUL_URL=consul://127.0.0.1:8500 cargo bench -p polylock --bench consul_latency
//! ```
//! `POLYLOCK_BENCH_ITERATIONS` sets the sample count (default 500).

#[path = "support/stats.rs"]
mod stats;

use std::time::Instant;

use polylock::backends::consul::LOCK_FLAG;
use polylock::{Client, LockOptions};

const WARMUP: usize = 50;

fn main() {
    let Ok(url) = std::env::var("POLYLOCK_TEST_CONSUL_URL") else {
        eprintln!("set POLYLOCK_TEST_CONSUL_URL (tests/bench.sh does) to run this bench");
        return;
    };
    let iterations = stats::iterations(500);
    stats::runtime().block_on(run(&url, iterations));
}

async fn run(url: &str, iterations: usize) {
    let http = url.replacen("consul://", "http://", 1);
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let consul = Client::connect(url).await.unwrap();
    let ours = consul
        .lock(&format!("bench/polylock-{suffix}"), LockOptions::mutex())
        .unwrap();
    let memory = Client::connect("memory://bench").await.unwrap();
    let embedded = memory.lock("bench", LockOptions::mutex()).unwrap();
    let raw = RawFloor::new(&http, &format!("bench/raw-{suffix}")).await;

    let (mut t_ours, mut t_raw, mut t_memory) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + iterations {
        let started = Instant::now();
        let lease = ours.try_acquire().await.unwrap().expect("uncontended");
        lease.release().await.unwrap();
        let ours_took = started.elapsed();

        let started = Instant::now();
        raw.acquire_release().await;
        let raw_took = started.elapsed();

        let started = Instant::now();
        let lease = embedded.try_acquire().await.unwrap().expect("uncontended");
        lease.release().await.unwrap();
        let memory_took = started.elapsed();

        if i >= WARMUP {
            t_ours.push(ours_took);
            t_raw.push(raw_took);
            t_memory.push(memory_took);
        }
    }
    raw.close().await;

    let (m_ours, m_raw, m_memory) = (
        stats::median(&mut t_ours),
        stats::median(&mut t_raw),
        stats::median(&mut t_memory),
    );
    println!("uncontended acquire+release, {iterations} samples each, interleaved");
    println!(
        "  polylock consul://     median {:>9.1?}  p90 {:>9.1?}",
        m_ours,
        stats::p90(&t_ours)
    );
    println!(
        "  raw floor (2 PUTs)     median {:>9.1?}  p90 {:>9.1?}",
        m_raw,
        stats::p90(&t_raw)
    );
    println!(
        "  polylock memory://     median {:>9.1?}  p90 {:>9.1?}",
        m_memory,
        stats::p90(&t_memory)
    );
    println!(
        "  ratio polylock/raw floor (medians): {:.2}",
        m_ours.as_secs_f64() / m_raw.as_secs_f64()
    );
}

/// The least a Consul lock can cost: two PUTs on a session made in advance.
struct RawFloor {
    client: reqwest::Client,
    http: String,
    key: String,
    session: String,
}

impl RawFloor {
    async fn new(http: &str, key: &str) -> Self {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .use_rustls_tls()
            .build()
            .unwrap();
        let reply: serde_json::Value = client
            .put(format!("{http}/v1/session/create"))
            .json(&serde_json::json!({"TTL": "60s", "LockDelay": "0s", "Behavior": "delete", "NodeChecks": []}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        RawFloor {
            client,
            http: http.to_string(),
            key: key.to_string(),
            session: reply["ID"].as_str().unwrap().to_string(),
        }
    }

    async fn put(&self, verb: &str) -> bool {
        let flags = LOCK_FLAG.to_string();
        let text = self
            .client
            .put(format!("{}/v1/kv/{}", self.http, self.key))
            .query(&[(verb, self.session.as_str()), ("flags", flags.as_str())])
            .body("raw")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.trim() == "true"
    }

    async fn acquire_release(&self) {
        assert!(self.put("acquire").await);
        assert!(self.put("release").await);
    }

    async fn close(&self) {
        let _ = self
            .client
            .put(format!("{}/v1/session/destroy/{}", self.http, self.session))
            .send()
            .await;
    }
}

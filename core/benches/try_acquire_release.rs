//! Native try_acquire + release latency on one backend, for the bindings'
//! side-by-side benches (`bindings-python/benches/overhead.py` runs this
//! and its own Python loop in one go).
//!
//! ```text
//! cargo bench -p polylock --bench try_acquire_release -- memory:// [consul://127.0.0.1:8500 …]
//! ```
//! Prints one line per URL: `native <url> median_us <µs> p90_us <µs>`.
//! `POLYLOCK_BENCH_ITERATIONS` sets the sample count (default 2 000).

#[path = "support/stats.rs"]
mod stats;

use std::time::Instant;

use polylock::{Client, LockOptions};

const WARMUP: usize = 50;

fn main() {
    let urls: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg.contains("://"))
        .collect();
    let iterations = stats::iterations(2_000);
    let runtime = stats::runtime();
    for url in urls {
        let (median, p90) = runtime.block_on(async {
            let client = Client::connect(&url).await.unwrap();
            let name = format!("bench/try-acquire-{}", std::process::id());
            let lock = client.lock(&name, LockOptions::mutex()).unwrap();
            let mut samples = Vec::with_capacity(iterations);
            for i in 0..WARMUP + iterations {
                let started = Instant::now();
                let lease = lock.try_acquire().await.unwrap().expect("uncontended");
                lease.release().await.unwrap();
                if i >= WARMUP {
                    samples.push(started.elapsed());
                }
            }
            let median = stats::median(&mut samples);
            (median, stats::p90(&samples))
        });
        println!(
            "native {url} median_us {:.1} p90_us {:.1}",
            median.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6
        );
    }
}

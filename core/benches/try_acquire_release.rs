//! Native try_acquire + release latency on one backend through the
//! blocking API (what the Python, C and Node bindings wrap), for the
//! bindings' side-by-side benches: `bindings-python/benches/overhead.py`
//! runs this and its own Python loop alternately, in chunks.
//!
//! ```text
//! cargo bench -p polylock --bench try_acquire_release -- memory:// [consul://127.0.0.1:8500 …]
//! ```
//! Prints one line per URL: `samples <url> <µs> <µs> …` (after a warm-up).
//! `POLYLOCK_BENCH_ITERATIONS` sets the sample count (default 2 000).

// Only `iterations` is used here; the other helpers serve the other benches.
#[allow(dead_code)]
#[path = "support/stats.rs"]
mod stats;

use std::time::Instant;

use polylock::blocking::Client;
use polylock::LockOptions;

const WARMUP: usize = 20;

fn main() {
    let urls: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg.contains("://"))
        .collect();
    let iterations = stats::iterations(2_000);
    for url in urls {
        let client = Client::connect(&url).unwrap();
        let name = format!("bench/try-acquire-{}", std::process::id());
        let lock = client.lock(&name, LockOptions::mutex()).unwrap();
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..WARMUP + iterations {
            let started = Instant::now();
            let guard = lock.try_acquire().unwrap().expect("uncontended");
            guard.release().unwrap();
            if i >= WARMUP {
                samples.push(started.elapsed());
            }
        }
        let line: Vec<String> = samples
            .iter()
            .map(|s| format!("{:.1}", s.as_secs_f64() * 1e6))
            .collect();
        println!("samples {url} {}", line.join(" "));
    }
}

//! What the benches share: their sample count, their runtime, and the
//! statistics they report.

use std::time::Duration;

/// `POLYLOCK_BENCH_ITERATIONS`, or `default`.
pub fn iterations(default: usize) -> usize {
    std::env::var("POLYLOCK_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The runtime a bench drives its client from (like an application would).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The median; sorts `samples`.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The 99th percentile of samples that `median` already sorted.
pub fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

//! Per-call overhead of the C ABI: try_acquire + release through the
//! exported `polylock_` functions vs the native blocking API (what the C ABI
//! wraps) and the native async API, interleaved in one run, on `memory://`
//! and, when `POLYLOCK_TEST_CONSUL_URL` is set (bench/overheads.sh runs it
//! inside tests/with-servers.sh), on Consul.
//!
//! ```text
//! cargo bench -p polylock-c --bench c_abi_overhead
//! ```
//! `POLYLOCK_BENCH_ITERATIONS` sets the sample count on memory:// (default
//! 20 000), `POLYLOCK_BENCH_SERVER_ITERATIONS` on a server (default 1 000).

use std::ffi::CString;
use std::time::{Duration, Instant};

use polylock::*;
use polylock_core::LockOptions;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    bench(
        "memory://c-abi-bench",
        env_count("POLYLOCK_BENCH_ITERATIONS", 20_000),
        1_000,
    );
    if let Ok(consul) = std::env::var("POLYLOCK_TEST_CONSUL_URL") {
        bench(
            &consul,
            env_count("POLYLOCK_BENCH_SERVER_ITERATIONS", 1_000),
            50,
        );
    }
}

/// One backend's three sides, interleaved; prints their medians and ratios.
fn bench(url_text: &str, iterations: usize, warmup: usize) {
    let url = CString::new(url_text).unwrap();
    let scheme = url_text.split("://").next().unwrap_or(url_text);
    let pid = std::process::id();

    // The C ABI.
    let mut client = std::ptr::null_mut();
    let mut lock = std::ptr::null_mut();
    let name = CString::new(format!("bench/c-{pid}")).unwrap();
    unsafe {
        assert_eq!(
            polylock_client_new(url.as_ptr(), &mut client),
            polylock_status::POLYLOCK_OK
        );
        let status = polylock_lock_new(client, name.as_ptr(), 1, 0, std::ptr::null(), &mut lock);
        assert_eq!(status, polylock_status::POLYLOCK_OK);
    }
    // Native blocking and async, on the same backend.
    let native = polylock_core::blocking::Client::connect(url_text).unwrap();
    let blocking_lock = native
        .lock(&format!("bench/blocking-{pid}"), LockOptions::mutex())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let async_lock = native
        .as_async()
        .lock(&format!("bench/async-{pid}"), LockOptions::mutex())
        .unwrap();

    let c_round = || {
        let started = Instant::now();
        let mut acquired = false;
        unsafe {
            assert_eq!(
                polylock_try_acquire(lock, &mut acquired),
                polylock_status::POLYLOCK_OK
            );
            assert!(acquired);
            assert_eq!(polylock_release(lock), polylock_status::POLYLOCK_OK);
        }
        started.elapsed()
    };
    let blocking_round = || {
        let started = Instant::now();
        let guard = blocking_lock.try_acquire().unwrap().expect("uncontended");
        guard.release().unwrap();
        started.elapsed()
    };
    let async_round = || {
        let started = Instant::now();
        runtime.block_on(async {
            let lease = async_lock
                .try_acquire()
                .await
                .unwrap()
                .expect("uncontended");
            lease.release().await.unwrap();
        });
        started.elapsed()
    };

    // The three run interleaved (so a change in the machine's load hits all
    // of them), in an order that rotates every iteration: each follows each
    // other equally often, so work one leaves on the runtime's threads (a
    // task's tail after it answered) is not always charged to the same one.
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..warmup + iterations {
        for k in 0..3 {
            let which = (i + k) % 3;
            let took = match which {
                0 => c_round(),
                1 => blocking_round(),
                _ => async_round(),
            };
            if i >= warmup {
                samples[which].push(took);
            }
        }
    }
    let [mut t_c, mut t_blocking, mut t_async] = samples;
    unsafe {
        polylock_lock_free(lock);
        polylock_client_free(client);
    }
    let (c, blocking, asynchronous) = (
        median(&mut t_c),
        median(&mut t_blocking),
        median(&mut t_async),
    );
    println!(
        "C ABI overhead, {scheme}:// try_acquire + release, {iterations} samples each (medians)"
    );
    println!("  C ABI (polylock_try_acquire + polylock_release): {c:?}");
    println!("  native Rust blocking API:                         {blocking:?}");
    println!("  native Rust async API (block_on per iteration):   {asynchronous:?}");
    println!(
        "  ratio C / native blocking: {:.3}; C / native async: {:.3}",
        c.as_secs_f64() / blocking.as_secs_f64(),
        c.as_secs_f64() / asynchronous.as_secs_f64()
    );
}

//! One client taking thousands of leases on distinct free names, 16 at a
//! time (the 2,000-lease hold test and the bench's leases row).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use polylock::{Client, Lease, LockOptions};

/// Acquisitions in flight at once.
const IN_FLIGHT: usize = 16;

/// Takes `leases` leases on the free names `{prefix}/0` … with `options`,
/// 16 acquisitions in flight; panics if one is busy.
#[allow(dead_code)] // the bench times its acquisitions
pub async fn take_many(
    client: &Client,
    prefix: &str,
    leases: usize,
    options: LockOptions,
) -> Vec<Lease> {
    take(client, prefix, leases, options, None).await
}

/// [`take_many`], timing each acquisition (its `try_acquire`): the k-th to
/// start stores its time in nanoseconds in `latencies[k]`, which has a slot
/// per lease (allocated by the caller, so that a memory figure taken around
/// this call counts only the leases).
#[allow(dead_code)] // the hold test does not time them
pub async fn take_many_timed(
    client: &Client,
    prefix: &str,
    leases: usize,
    options: LockOptions,
    latencies: &[AtomicU64],
) -> Vec<Lease> {
    assert!(latencies.len() >= leases, "a latency slot per lease");
    take(client, prefix, leases, options, Some(latencies)).await
}

async fn take(
    client: &Client,
    prefix: &str,
    leases: usize,
    options: LockOptions,
    latencies: Option<&[AtomicU64]>,
) -> Vec<Lease> {
    let started = AtomicUsize::new(0);
    let held = Mutex::new(Vec::with_capacity(leases));
    futures_util::future::join_all((0..IN_FLIGHT).map(|first| {
        let (options, started, held) = (options.clone(), &started, &held);
        async move {
            for i in (first..leases).step_by(IN_FLIGHT) {
                let lock = client
                    .lock(&format!("{prefix}/{i}"), options.clone())
                    .unwrap();
                let k = started.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let lease = lock.try_acquire().await.unwrap().expect("a free name");
                if let Some(latencies) = latencies {
                    let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    latencies[k].store(nanos, Ordering::Relaxed);
                }
                held.lock().unwrap().push(lease);
            }
        }
    }))
    .await;
    held.into_inner().unwrap()
}

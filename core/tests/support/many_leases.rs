//! One client taking thousands of leases on distinct free names, 16 at a
//! time (the 2,000-lease hold test and the bench's leases row).

use polylock::{Client, Lease, LockOptions};

/// Takes `leases` leases on the free names `{prefix}/0` … with `options`,
/// 16 acquisitions in flight; panics if one is busy.
pub async fn take_many(
    client: &Client,
    prefix: &str,
    leases: usize,
    options: LockOptions,
) -> Vec<Lease> {
    const IN_FLIGHT: usize = 16;
    futures_util::future::join_all((0..IN_FLIGHT).map(|first| {
        let options = options.clone();
        async move {
            let mut mine = Vec::new();
            for i in (first..leases).step_by(IN_FLIGHT) {
                let lock = client
                    .lock(&format!("{prefix}/{i}"), options.clone())
                    .unwrap();
                mine.push(lock.try_acquire().await.unwrap().expect("a free name"));
            }
            mine
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect()
}

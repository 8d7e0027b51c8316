//! The blocking facade: same behaviour as the async API, from plain threads,
//! with guards that release on drop. Runs on `memory://`, and on Consul when
//! `POLYLOCK_TEST_CONSUL_URL` is set (and the `consul` feature is on).

#[path = "support/env.rs"]
mod env;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use polylock::blocking::Client;
use polylock::{ErrorKind, LockOptions};

const WAIT: Duration = Duration::from_secs(60);

#[cfg_attr(not(any(feature = "consul", feature = "postgres")), allow(unused_mut))]
fn urls() -> Vec<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut urls = vec![format!(
        "memory://blocking-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )];
    #[cfg(feature = "consul")]
    urls.extend(env::server_env("POLYLOCK_TEST_CONSUL_URL", true));
    #[cfg(feature = "postgres")]
    urls.extend(env::server_env("POLYLOCK_TEST_POSTGRES_URL", true));
    urls
}

fn name(base: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "blocking/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn guard_releases_on_drop() {
    for url in urls() {
        let (a, b) = (
            Client::connect(&url).unwrap(),
            Client::connect(&url).unwrap(),
        );
        let name = name("drop");
        {
            let guard = a
                .lock(&name, LockOptions::mutex())
                .unwrap()
                .try_acquire()
                .unwrap()
                .unwrap();
            assert!(guard.is_held());
            assert!(b
                .lock(&name, LockOptions::mutex())
                .unwrap()
                .try_acquire()
                .unwrap()
                .is_none());
        }
        // The drop released synchronously: the lock is free right away.
        let guard = b
            .lock(&name, LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .unwrap();
        assert!(guard.is_some(), "{url}: a dropped guard released its lock");
    }
}

#[test]
fn threads_exclude_each_other() {
    for url in urls() {
        let name = name("threads");
        let inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let lock = Client::connect(&url)
                    .unwrap()
                    .lock(&name, LockOptions::mutex())
                    .unwrap();
                let inside = inside.clone();
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        lock.synchronize(WAIT, |guard| {
                            assert!(guard.is_held());
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                            std::thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }
}

#[test]
fn errors_are_typed() {
    for url in urls() {
        let client = Client::connect(&url).unwrap();
        let name = name("errors");
        let lock = client.lock(&name, LockOptions::mutex()).unwrap();
        let guard = lock.try_acquire().unwrap().unwrap();
        let other = Client::connect(&url).unwrap();
        let error = other
            .lock(&name, LockOptions::mutex())
            .unwrap()
            .acquire(Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        guard.release().unwrap();
        assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::NotHeld);
        assert_eq!(
            client
                .lock("bad name", LockOptions::mutex())
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
    }
}

#[test]
fn lost_callback_and_panics_in_it() {
    let url = format!("memory://blocking-lost-{}", std::process::id());
    let client = Client::connect(&url).unwrap();
    let name = name("lost");
    let guard = client
        .lock(&name, LockOptions::mutex())
        .unwrap()
        .try_acquire()
        .unwrap()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    guard.on_lost(|_| panic!("a user callback panics"));
    let again = client.lock(&name, LockOptions::mutex()).unwrap();
    guard.on_lost(move |event| {
        // Callbacks run outside the runtime: the blocking API works here.
        let retaken = again
            .try_acquire()
            .expect("blocking calls work in callbacks");
        tx.send((event.reason.clone(), retaken.is_some())).unwrap();
    });
    let store = polylock::backends::memory::MemoryStore::named(&format!(
        "blocking-lost-{}",
        std::process::id()
    ));
    assert!(store.revoke(&name, guard.holder()));
    let (reason, retaken) = rx
        .recv_timeout(WAIT)
        .expect("the second callback still runs");
    assert!(!reason.is_empty());
    assert!(retaken, "the revoked lock was free to take again");
    assert!(!guard.is_held());
    assert_eq!(guard.release().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn blocking_calls_inside_a_runtime_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let error = Client::connect("memory://").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Usage, "{error}");
    });
}

//! The bad-input matrix, Rust column: every case gets a typed error (or the
//! documented accepted outcome) and loses nothing, on memory://. With
//! `POLYLOCK_BAD_INPUT_RECORDS` set, each case appends one JSON line
//! `{"case", "lang": "rust", "error"}` to that file for
//! `tests/bad-input/table.py` (README "Bad input").

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use polylock::blocking::{self, Client, Guard};
use polylock::{Error, ErrorKind, LeaseSlot, LockOptions, Wait};

fn record(case: &str, error: &str) {
    let Ok(path) = std::env::var("POLYLOCK_BAD_INPUT_RECORDS") else {
        return;
    };
    if path.is_empty() {
        return;
    }
    let line = serde_json::json!({"case": case, "lang": "rust", "error": error}).to_string();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the records file");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("append a record");
}

fn kind_name(kind: ErrorKind) -> String {
    format!("{kind:?}")
}

/// Asserts `result` failed with `kind` and records it under `case`.
fn expect_kind<T>(case: &str, result: Result<T, Error>, kind: ErrorKind) {
    match result {
        Ok(_) => panic!("{case}: accepted, expected {kind:?}"),
        Err(error) => {
            assert_eq!(error.kind(), kind, "{case}: {error}");
            record(case, &kind_name(error.kind()));
        }
    }
}

fn unique(base: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "bad-input/{}/{base}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn memory(namespace: &str) -> Client {
    Client::connect(&format!(
        "memory://rust-bad-{}-{namespace}",
        std::process::id()
    ))
    .expect("memory://")
}

/// A client holding a lease on one lock; `check` proves afterwards that
/// the lease is still held and that a fresh lock still works.
struct Witness {
    client: Client,
    held: Guard,
}

impl Witness {
    fn new(namespace: &str) -> Witness {
        let client = memory(namespace);
        let held = client
            .lock(&unique("held"), LockOptions::mutex())
            .unwrap()
            .try_acquire()
            .unwrap()
            .expect("free");
        Witness { client, held }
    }

    fn check(&self) {
        assert!(self.held.is_held(), "the held lease was lost");
        let lock = self
            .client
            .lock(&unique("after"), LockOptions::mutex())
            .unwrap();
        let guard = lock.try_acquire().unwrap().expect("a fresh lock is free");
        guard.release().unwrap();
    }
}

#[test]
fn names() {
    let w = Witness::new("names");
    let cases: [(&str, String); 3] = [
        ("name-empty", String::new()),
        ("name-too-long", "a".repeat(257)),
        ("name-control-char", "bad\nname\0x".into()),
    ];
    for (case, name) in cases {
        expect_kind(
            case,
            w.client.lock(&name, LockOptions::mutex()),
            ErrorKind::InvalidArgument,
        );
        w.check();
    }
    // 256 bytes is still a valid name: the limit is exact.
    let longest = w
        .client
        .lock(&"b".repeat(256), LockOptions::mutex())
        .unwrap();
    longest.try_acquire().unwrap().unwrap().release().unwrap();
    // A &str is UTF-8 by type: non-UTF-8 bytes cannot be passed.
    expect_kind(
        "value-huge",
        w.client.lock(&"n".repeat(10 << 20), LockOptions::mutex()),
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        "value-huge",
        w.client.lock(
            &unique("huge-value"),
            LockOptions::mutex().value("v".repeat(10 << 20)),
        ),
        ErrorKind::InvalidArgument,
    );
    w.check();
}

#[test]
fn urls() {
    let w = Witness::new("urls");
    expect_kind(
        "url-invalid",
        Client::connect("not a url"),
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        "url-unknown-scheme",
        Client::connect("nosuch://host"),
        ErrorKind::InvalidArgument,
    );
    w.check();
}

#[test]
fn ttls_and_limits() {
    let w = Witness::new("ttls");
    let name = unique("ttl");
    expect_kind(
        "ttl-zero",
        w.client
            .lock(&name, LockOptions::mutex().ttl(Duration::ZERO)),
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        "ttl-too-large",
        w.client.lock(
            &name,
            LockOptions::mutex().ttl(Duration::from_millis(u64::MAX)),
        ),
        ErrorKind::InvalidArgument,
    );
    let mut options = polylock::ClientOptions::new("memory://");
    options.default_ttl = Duration::MAX;
    expect_kind(
        "ttl-too-large",
        Client::from_options(options),
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        "limit-zero",
        w.client.lock(&name, LockOptions::semaphore(0)),
        ErrorKind::InvalidArgument,
    );
    w.check();
    // The largest limit is a valid semaphore: accepted, and it works.
    let huge = w
        .client
        .lock(&name, LockOptions::semaphore(u32::MAX))
        .unwrap();
    let first = huge.try_acquire().unwrap().expect("free");
    let second = huge.try_acquire().unwrap().expect("room for more");
    first.release().unwrap();
    second.release().unwrap();
    record("limit-huge", "ok (a semaphore of 4294967295)");
    w.check();
    // Durations cannot be negative: timeout-negative is not expressible.
}

#[test]
fn releases() {
    let w = Witness::new("releases");
    let lock = w
        .client
        .lock(&unique("double"), LockOptions::mutex())
        .unwrap();
    let guard = lock.try_acquire().unwrap().unwrap();
    guard.release().unwrap();
    expect_kind("double-release", guard.release(), ErrorKind::NotHeld);
    assert!(
        lock.try_acquire().unwrap().is_some(),
        "the lock is free again"
    );
    w.check();

    // An operator's force release revokes the lease behind its holder.
    let name = unique("revoked");
    let lock = w.client.lock(&name, LockOptions::mutex()).unwrap();
    let guard = lock.try_acquire().unwrap().unwrap();
    let client = w.client.as_async().clone();
    let revoked = blocking::block_on(async move { client.force_release(&name).await })
        .unwrap()
        .unwrap();
    assert_eq!(revoked, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while guard.is_held() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    expect_kind("release-after-loss", guard.release(), ErrorKind::Lost);
    let again = lock.try_acquire().unwrap().expect("free after the loss");
    again.release().unwrap();
    w.check();
}

#[test]
fn use_after_close() {
    let client = memory("closed");
    let lock = client
        .lock(&unique("closed"), LockOptions::mutex())
        .unwrap();
    drop(client);
    // The lock keeps the client's connection: it still works.
    let guard = lock.try_acquire().unwrap().expect("free");
    assert!(guard.is_held());
    guard.release().unwrap();
    record("use-after-close", "ok (the lock keeps its client)");

    // A lock handle (LeaseSlot, what every binding's lock is) closed, then used.
    let async_client = memory("closed").as_async().clone();
    let slot = LeaseSlot::new(
        async_client
            .lock(&unique("slot"), LockOptions::mutex())
            .unwrap(),
    );
    slot.close();
    expect_kind(
        "handle-freed",
        slot.acquire_blocking(Wait::No),
        ErrorKind::Usage,
    );
}

#[test]
fn callback_panics() {
    let client = memory("callbacks").as_async().clone();
    let name = unique("panic");
    let slot = LeaseSlot::new(client.lock(&name, LockOptions::mutex()).unwrap());
    let called = Arc::new(AtomicUsize::new(0));
    slot.on_lost(Arc::new(|_| panic!("a lost listener panics")));
    let seen = called.clone();
    slot.on_lost(Arc::new(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    // A panicking callback on a lease given as `Lease::on_lost` too.
    let lease = slot.acquire_blocking(Wait::No).unwrap().expect("free");
    lease.on_lost(|_| panic!("a lease callback panics"));
    let seen = called.clone();
    lease.on_lost(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let operator = client.clone();
    let forced = name.clone();
    blocking::block_on(async move { operator.force_release(&forced).await })
        .unwrap()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while called.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(called.load(Ordering::SeqCst), 2, "the other callbacks ran");
    // The process and the notifier thread survive: a later loss is told too.
    let lease = slot
        .acquire_blocking(Wait::No)
        .unwrap()
        .expect("free again");
    let seen = called.clone();
    lease.on_lost(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let forced = name.clone();
    blocking::block_on(async move { client.force_release(&forced).await })
        .unwrap()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while called.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(called.load(Ordering::SeqCst), 4);
    record("callback-throws", "panic caught (others still called)");
}

#[test]
fn threads_one_handle() {
    let client = memory("threads").as_async().clone();
    let slot = Arc::new(LeaseSlot::new(
        client
            .lock(&unique("threads"), LockOptions::mutex())
            .unwrap(),
    ));
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let slot = slot.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                slot.acquire_blocking(Wait::For(Duration::from_millis(200)))
            })
        })
        .collect();
    let mut held = 0;
    let mut kinds = Vec::new();
    for handle in handles {
        match handle.join().expect("no panic") {
            Ok(Some(_)) => held += 1,
            Ok(None) => panic!("a timed acquire ends with a lease or an error"),
            Err(error) => kinds.push(error.kind()),
        }
    }
    assert_eq!(held, 1, "exactly one holds");
    assert!(
        kinds.iter().all(|kind| *kind == ErrorKind::Usage),
        "{kinds:?}"
    );
    assert!(slot.lease().expect("the slot keeps its lease").is_held());
    slot.release_blocking().unwrap();
    record("threads-one-handle", &kind_name(ErrorKind::Usage));
}

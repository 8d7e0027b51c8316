//! LDLM-only behaviour against the real server (tests/with-servers.sh
//! starts them; without an LDLM server binary every case skips): password,
//! TLS and mutual TLS, a server restart, a cut connection, limit
//! mismatches, FIFO waits, cancelled waits, and what each call costs,
//! counted in the server's own log.

#[path = "support/env.rs"]
mod env;
#[path = "support/ldlm_log.rs"]
mod ldlm_log;
#[path = "support/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldlm_log::ServerLog;
use polylock::{Client, ClientOptions, ErrorKind, Event, Lease, LockOptions, Secret};
use tokio::sync::mpsc;

/// Bound for every wait on something that must happen.
const PATIENCE: Duration = Duration::from_secs(60);

fn unique(base: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "ldlm-tests/{base}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn mutex() -> LockOptions {
    LockOptions::mutex().ttl(Duration::from_secs(15))
}

fn setting(var: &str) -> Option<String> {
    env::ldlm_env(var)
}

fn cert(dir: &str, file: &str) -> String {
    Path::new(dir).join(file).display().to_string()
}

async fn connect(url: &str) -> Client {
    Client::connect(url).await.expect("the LDLM server answers")
}

async fn hold(client: &Client, name: &str, options: LockOptions) -> Lease {
    client
        .lock(name, options)
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("the lock is free")
}

fn address(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    rest.split(['/', '?']).next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_server_wants_the_password_and_it_is_never_shown() {
    let (Some(url), Some(password)) = (
        setting("POLYLOCK_TEST_LDLM_PASSWORD_URL"),
        setting("POLYLOCK_TEST_LDLM_PASSWORD"),
    ) else {
        return;
    };
    let missing = Client::connect(&url).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Auth, "{missing}");
    let mut wrong = ClientOptions::new(&url);
    wrong.token = Some(Secret::new("not-the-password"));
    let wrong = Client::from_options(wrong).await.unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Auth, "{wrong}");
    assert!(!wrong.to_string().contains("not-the-password"), "{wrong}");

    let mut options = ClientOptions::new(&url);
    options.token = Some(Secret::new(&password));
    assert!(!format!("{options:?}").contains(&password));
    let client = Client::from_options(options).await.unwrap();
    assert!(!format!("{client:?}").contains(&password));
    let name = unique("password");
    hold(&client, &name, mutex()).await.release().await.unwrap();

    // The same password in the URL's userinfo.
    let in_url = url.replacen("ldlm://", &format!("ldlm://:{password}@"), 1);
    let client = connect(&in_url).await;
    assert!(!format!("{client:?}").contains(&password));
    hold(&client, &name, mutex()).await.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_against_the_given_ca() {
    let (Some(url), Some(certs)) = (
        setting("POLYLOCK_TEST_LDLM_TLS_URL"),
        setting("POLYLOCK_TEST_LDLM_TLS_CERTS"),
    ) else {
        return;
    };
    let with_ca = format!("{url}?ca={}", cert(&certs, "ca.pem"));
    let client = connect(&with_ca).await;
    let name = unique("tls");
    hold(&client, &name, mutex()).await.release().await.unwrap();
    // The public roots do not know the test CA.
    let untrusted = Client::connect(&url).await.unwrap_err();
    assert_eq!(untrusted.kind(), ErrorKind::Connection, "{untrusted}");
    assert!(untrusted.to_string().contains("certificate"), "{untrusted}");
    // Tests only: skip_verify accepts any certificate.
    let client = connect(&format!("{url}?skip_verify=true")).await;
    hold(&client, &name, mutex()).await.release().await.unwrap();
    // A plain-text client gets nowhere with a TLS server.
    let plain = url.replacen("ldlms://", "ldlm://", 1);
    let error = Client::connect(&format!("{plain}?max_retries=0"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let (Some(url), Some(certs)) = (
        setting("POLYLOCK_TEST_LDLM_MTLS_URL"),
        setting("POLYLOCK_TEST_LDLM_MTLS_CERTS"),
    ) else {
        return;
    };
    let ca = cert(&certs, "ca.pem");
    let with_cert = format!(
        "{url}?ca={ca}&cert={}&key={}",
        cert(&certs, "client.pem"),
        cert(&certs, "client-key.pem")
    );
    let client = connect(&with_cert).await;
    let name = unique("mtls");
    hold(&client, &name, mutex()).await.release().await.unwrap();
    // Refused every time, whether the server's alert, a broken pipe or its
    // close reaches the client first.
    for _ in 0..20 {
        let refused = Client::connect(&format!("{url}?ca={ca}&max_retries=0"))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Auth, "{refused}");
    }
    // Files that are not what they claim are typed errors too.
    let bogus = Client::connect(&format!("{url}?ca={}", cert(&certs, "missing.pem")))
        .await
        .unwrap_err();
    assert_eq!(bogus.kind(), ErrorKind::InvalidArgument, "{bogus}");
}

/// Counts the lost callbacks of `leases`, reporting each on `fired`.
fn count_losses(leases: &[Lease]) -> (Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, fired) = mpsc::unbounded_channel();
    for lease in leases {
        let (calls, tx) = (calls.clone(), tx.clone());
        lease.on_lost(move |event| {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(event.name.clone());
        });
    }
    (calls, fired)
}

async fn all_lost(fired: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    while names.len() < n {
        let name = tokio::time::timeout(PATIENCE, fired.recv())
            .await
            .expect("every lease is reported lost")
            .unwrap();
        names.push(name);
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_every_lease_once_and_the_client_carries_on() {
    let (Some(url), Some(state)) = (
        setting("POLYLOCK_TEST_LDLM_RESTART_URL"),
        setting("POLYLOCK_TEST_LDLM_RESTART_STATE"),
    ) else {
        return;
    };
    let (client, mut events) = observed(&url).await;
    let names: Vec<String> = (0..3).map(|i| unique(&format!("restart{i}"))).collect();
    let mut leases = Vec::new();
    for name in &names {
        leases.push(hold(&client, name, mutex()).await);
    }
    let (calls, mut fired) = count_losses(&leases);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/ldlm.sh");
    let status = tokio::process::Command::new("bash")
        .arg(script)
        .args(["restart", &state])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "ldlm.sh restart failed");
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(all_lost(&mut fired, 3).await, expected);
    for lease in &leases {
        assert!(!lease.is_held());
        assert_eq!(lease.release().await.unwrap_err().kind(), ErrorKind::Lost);
    }
    // New work opens a new connection.
    for name in &names {
        hold(&client, name, mutex()).await.release().await.unwrap();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "each lease lost exactly once"
    );
    let mut lost_events = 0;
    while let Ok(event) = events.try_recv() {
        lost_events += usize::from(matches!(event, Event::Lost { .. }));
    }
    assert_eq!(lost_events, 3, "one Lost event per lease");
}

async fn observed(url: &str) -> (Client, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut options = ClientOptions::new(url);
    options.observers.push(Arc::new(move |event: &Event| {
        let _ = tx.send(event.clone());
    }));
    (Client::from_options(options).await.unwrap(), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_loses_its_leases_and_frees_the_lock() {
    let Some(url) = setting("POLYLOCK_TEST_LDLM_URL") else {
        return;
    };
    let proxy = proxy::Proxy::start(address(&url)).await;
    let cut_off = connect(&format!("ldlm://{}?max_retries=0", proxy.addr)).await;
    let names = [unique("cut-a"), unique("cut-b")];
    let leases = [
        hold(&cut_off, &names[0], mutex()).await,
        hold(
            &cut_off,
            &names[1],
            LockOptions::semaphore(2).ttl(Duration::from_secs(15)),
        )
        .await,
    ];
    let (calls, mut fired) = count_losses(&leases);
    proxy.cut();
    all_lost(&mut fired, 2).await;
    // The server freed them with the connection, long before their TTL.
    let other = connect(&url).await;
    hold(&other, &names[0], mutex())
        .await
        .release()
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A client whose server is gone says so, typed.
    let error = cut_off
        .lock(&names[0], mutex())
        .unwrap()
        .try_acquire()
        .await;
    assert_eq!(error.unwrap_err().kind(), ErrorKind::Connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_size_is_a_limit_mismatch_both_ways() {
    let Some(url) = setting("POLYLOCK_TEST_LDLM_URL") else {
        return;
    };
    let (a, b) = (connect(&url).await, connect(&url).await);
    let name = unique("mismatch");
    let held = hold(&a, &name, mutex()).await;
    let error = b
        .lock(
            &name,
            LockOptions::semaphore(2).ttl(Duration::from_secs(15)),
        )
        .unwrap()
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitMismatch, "{error}");
    assert!(error.to_string().contains("another limit"), "{error}");
    // A waiting acquire hears the same at once.
    let error = b
        .lock(
            &name,
            LockOptions::semaphore(2).ttl(Duration::from_secs(15)),
        )
        .unwrap()
        .acquire(PATIENCE)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitMismatch, "{error}");
    held.release().await.unwrap();

    let other = unique("mismatch-semaphore");
    let held = hold(
        &a,
        &other,
        LockOptions::semaphore(3).ttl(Duration::from_secs(15)),
    )
    .await;
    let error = b
        .lock(&other, mutex())
        .unwrap()
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitMismatch, "{error}");
    held.release().await.unwrap();
    // LDLM's size is an int32.
    let too_big = b
        .lock(&other, LockOptions::semaphore(u32::MAX))
        .unwrap()
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::InvalidArgument, "{too_big}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_granted_in_arrival_order() {
    let (Some(url), Some(log)) = (
        setting("POLYLOCK_TEST_LDLM_URL"),
        setting("POLYLOCK_TEST_LDLM_LOG"),
    ) else {
        return;
    };
    const WAITERS: usize = 5;
    let log = ServerLog::new(log);
    let name = unique("fifo");
    let holder = connect(&url).await;
    let first = hold(&holder, &name, mutex()).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let client = connect(&url).await;
        let lock = client.lock(&name, mutex()).unwrap();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let lease = lock
                .acquire(PATIENCE)
                .await
                .expect("every waiter gets a turn");
            order.lock().unwrap().push(i);
            lease.release().await.unwrap();
            drop(client);
        }));
        // Waiter i is at the server before waiter i + 1 is sent.
        log.wait_for("Lock request", &name, i + 1).await;
    }
    first.release().await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..WAITERS).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_one_lock_call_a_try_one_trylock_and_a_renewal_one_renew() {
    let (Some(url), Some(log)) = (
        setting("POLYLOCK_TEST_LDLM_URL"),
        setting("POLYLOCK_TEST_LDLM_LOG"),
    ) else {
        return;
    };
    let log = ServerLog::new(log);
    let name = unique("costs");
    let (a, b) = (connect(&url).await, connect(&url).await);
    let held = hold(&a, &name, mutex()).await;
    assert!(b
        .lock(&name, mutex())
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .is_none());
    let error = b
        .lock(&name, mutex())
        .unwrap()
        .acquire(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    let waiter = {
        let lock = b.lock(&name, mutex()).unwrap();
        tokio::spawn(async move { lock.acquire(PATIENCE).await })
    };
    log.wait_for("Lock request", &name, 2).await;
    held.renew().await.unwrap();
    held.release().await.unwrap();
    let second = waiter.await.unwrap().unwrap();
    second.release().await.unwrap();
    // Two tries (a's grant, b's refusal), two waits, one renewal, two unlocks.
    assert_eq!(log.count("TryLock request", &name), 2);
    assert_eq!(log.count("Lock request", &name), 2);
    assert_eq!(log.count("Renew request", &name), 1);
    assert_eq!(log.count("Unlock request", &name), 2);
    // The timed-out wait ended on the server at its deadline.
    let refused = log.lines("Lock response", &name);
    assert!(
        refused
            .iter()
            .any(|line| line.contains("deadline exceeded")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_leaves_no_waiter_on_the_server() {
    let (Some(url), Some(log)) = (
        setting("POLYLOCK_TEST_LDLM_URL"),
        setting("POLYLOCK_TEST_LDLM_LOG"),
    ) else {
        return;
    };
    let log = ServerLog::new(log);
    let name = unique("cancel");
    let (a, b, c) = (
        connect(&url).await,
        connect(&url).await,
        connect(&url).await,
    );
    let held = hold(&a, &name, mutex()).await;
    let waiting = {
        let lock = b.lock(&name, mutex()).unwrap();
        tokio::spawn(async move { lock.acquire_forever().await })
    };
    log.wait_for("Lock request", &name, 1).await;
    waiting.abort();
    // The server ends the cancelled call ("context canceled").
    log.wait_for("Lock response", &name, 1).await;
    held.release().await.unwrap();
    // So the lock is free at once, not after a stray grant's TTL.
    hold(&c, &name, mutex()).await.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_after_a_wait_longer_than_its_ttl_is_held() {
    let (Some(url), Some(log)) = (
        setting("POLYLOCK_TEST_LDLM_URL"),
        setting("POLYLOCK_TEST_LDLM_LOG"),
    ) else {
        return;
    };
    let log = ServerLog::new(log);
    let name = unique("long-wait");
    let ttl = Duration::from_secs(1);
    let (a, b) = (connect(&url).await, connect(&url).await);
    let held = hold(&a, &name, LockOptions::mutex().ttl(ttl)).await;
    let waiter = {
        let lock = b.lock(&name, LockOptions::mutex().ttl(ttl)).unwrap();
        tokio::spawn(async move { lock.acquire(PATIENCE).await })
    };
    log.wait_for("Lock request", &name, 1).await;
    // The holder keeps the lock for four of its renewals (every TTL/3): the
    // waiter's call outlives its own TTL.
    log.wait_for("Renew request", &name, 4).await;
    held.release().await.unwrap();
    let lease = waiter.await.unwrap().expect("the waiter gets the lock");
    // Its deadline counts from a renewal sent after the grant, not from the
    // call sent long before it.
    assert!(lease.is_held(), "{:?}", lease.loss_reason());
    assert!(lease.time_to_expiration() > Duration::ZERO);
    lease.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_malformed_servers_are_typed_errors() {
    let Some(_url) = setting("POLYLOCK_TEST_LDLM_URL") else {
        return;
    };
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = Client::connect(&format!("ldlm://127.0.0.1:{port}?max_retries=1"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error}");
    for bad in [
        "ldlm://127.0.0.1:1?keepalive=5s",
        "ldlm://127.0.0.1:1?ca=/x.pem",
        "ldlm://:bad\u{7f}password@127.0.0.1:1",
    ] {
        let error = Client::connect(bad).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad}: {error}");
    }
}

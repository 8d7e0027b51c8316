//! Fault injection against real servers, judged by a fenced store.
//!
//! Every grant writes through a [`FencedStore`] guarding the lock's name
//! (accepts a write only if its fencing token is not below the highest
//! accepted; tokens increase per name). Faults, per backend:
//!
//! - **partition**: the holder reaches the server through a loopback proxy
//!   that is cut for longer than the TTL. When another client is granted
//!   the lock, the cut-off holder must already know it does not hold it,
//!   its lost signal must come, and its stale write is rejected.
//! - **kill -9** of a holder process: the lock comes free, with a higher token.
//! - **SIGSTOP past the TTL, then SIGCONT**: the woken holder reports "lost"
//!   on its first check, while the new holder's writes are accepted.
//! - **server restart**: FerretDB (SQLite, state kept) and a persistent
//!   Consul server: the holder either survives (a renewal proves it, and
//!   nobody else is granted the lock until it releases) or learns it lost;
//!   the next holder's token is higher. A Consul dev agent keeps no state:
//!   its restart must be reported as a loss, and the same client must be
//!   able to lock again (its tokens then restart, so a fenced resource must
//!   be re-based; the suite checks fencing per server lifetime).
//! - **Consul leader kill** in a three-server cluster (clients on the two
//!   followers): held leases survive or are reported lost, never duplicated.
//!
//! LDLM gives no fencing token, so its judge is the order of events instead
//! of a fenced store: a holder that is cut off (a partition past the TTL:
//! the proxy freezes, nothing crosses, no side sees the connection end) must
//! report its loss before the server grants the lock to anyone else (the
//! grant's time from the server's log, the loss's from the holder, both on
//! this machine's clock); a holder killed with `kill -9` frees the lock with
//! its connection; a holder stopped past its TTL says "lost" when woken; a
//! server restart reports every lease lost, before the restarted server
//! grants the lock again, and the client locks again.
//!
//! One summary line per backend: grants checked, writes accepted and
//! rejected, faults injected, checks, violations (must be 0). Servers come
//! from tests/with-servers.sh (`POLYLOCK_TEST_FAULTS_DIR`); in CI a missing
//! one fails.

#[path = "support/child_holder.rs"]
mod child_holder;
#[path = "support/env.rs"]
mod env;
#[path = "support/fault_servers.rs"]
mod fault_servers;
#[path = "support/fence.rs"]
mod fence;
#[path = "support/ldlm_log.rs"]
mod ldlm_log;
#[path = "support/proxy.rs"]
mod proxy;

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use child_holder::{ChildHolder, CHILD_ENV};
use fault_servers::FaultServers;
use fence::{FencedStore, Tally};
use polylock::{Client, ErrorKind, Lease, LockOptions};

const TTL: Duration = Duration::from_secs(3);
/// Bound for every wait on an event in this suite.
const PATIENCE: Duration = Duration::from_secs(90);

fn unique(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("faults/{base}-{}-{nanos}", std::process::id())
}

fn options() -> LockOptions {
    LockOptions::mutex().ttl(TTL)
}

/// Connects, retrying while the server is unreachable (bounded).
async fn connect(url: &str) -> Client {
    retrying("connect", || Client::connect(url)).await
}

/// Acquires `name` (bounded), retrying connection and backend errors a
/// recovering server gives.
async fn acquire(client: &Client, name: &str) -> Lease {
    let lock = client.lock(name, options()).unwrap();
    retrying("acquire", || lock.acquire(PATIENCE)).await
}

/// Runs `call` until it succeeds or fails with an error other than a
/// connection or backend one; gives up after [`PATIENCE`].
async fn retrying<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = polylock::Result<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e)
                if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Backend)
                    && Instant::now() < deadline =>
            {
                // Backoff between attempts against a recovering server.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The next holder after a fault: granted with a higher token than `old`,
/// its write accepted, the stale `old` write rejected.
fn next_holder_checks(store: &FencedStore, tally: &mut Tally, old: u64, next: &Lease, fault: &str) {
    let new = next.fencing_token().unwrap();
    tally.check(new > old, format!("{fault}: token {new} after {old}"));
    tally.check(
        store.write(new),
        format!("{fault}: new holder's write rejected"),
    );
    tally.check(!store.write(old), format!("{fault}: stale write accepted"));
}

/// Partition: the holder's proxy is cut past the TTL.
async fn partition(
    url: &str,
    target: SocketAddr,
    proxied: impl Fn(SocketAddr) -> String,
    tally: &mut Tally,
) {
    let store = &FencedStore::default();
    let proxy = proxy::Proxy::start(target).await;
    let name = unique("partition");
    let cut_off = connect(&proxied(proxy.addr)).await;
    let lease = acquire(&cut_off, &name).await;
    let old = lease.fencing_token().unwrap();
    tally.check(store.write(old), "partition: holder's write rejected");
    proxy.cut();
    tally.faults += 1;
    let other = connect(url).await;
    let next = acquire(&other, &name).await;
    tally.check(
        !lease.is_held(),
        "partition: the cut-off holder still believes it holds the lock granted to another",
    );
    let lost = tokio::time::timeout(PATIENCE, lease.lost()).await;
    tally.check(matches!(lost, Ok(Some(_))), "partition: no lost signal");
    next_holder_checks(store, tally, old, &next, "partition");
    next.release().await.unwrap();
    tally_store(tally, store);
}

/// kill -9 of a holder process.
async fn kill_holder(url: &str, tally: &mut Tally) {
    let store = &FencedStore::default();
    let name = unique("kill");
    let mut child = ChildHolder::spawn(url, &name, TTL);
    let old = tokio::task::block_in_place(|| child.held()).unwrap();
    tally.check(store.write(old), "kill: holder's write rejected");
    child.signal("-KILL");
    tally.faults += 1;
    let client = connect(url).await;
    let next = acquire(&client, &name).await;
    next_holder_checks(store, tally, old, &next, "kill -9");
    next.release().await.unwrap();
    tally_store(tally, store);
}

/// SIGSTOP past the TTL, then SIGCONT.
async fn freeze_holder(url: &str, tally: &mut Tally) {
    let store = &FencedStore::default();
    let name = unique("freeze");
    let mut child = ChildHolder::spawn(url, &name, TTL);
    let old = tokio::task::block_in_place(|| child.held()).unwrap();
    tally.check(store.write(old), "freeze: holder's write rejected");
    child.signal("-STOP");
    tally.faults += 1;
    let client = connect(url).await;
    let next = acquire(&client, &name).await;
    child.signal("-CONT");
    let says_held = tokio::task::block_in_place(|| child.says_held());
    tally.check(
        !says_held,
        "freeze: the woken holder says it holds a lock granted to another",
    );
    next_holder_checks(store, tally, old, &next, "SIGSTOP/SIGCONT");
    next.release().await.unwrap();
    tally_store(tally, store);
}

/// After a server-side fault: the holder either survives (a renewal proves
/// it; then a rival is refused until it releases) or learns it lost. Either
/// way the next holder's token is higher and stale writes are rejected.
async fn survive_or_lose(
    holder: Lease,
    rival: &Client,
    store: &FencedStore,
    tally: &mut Tally,
    fault: &str,
) {
    let name = holder.name().to_string();
    let old = holder.fencing_token().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let survived = loop {
        match holder.renew().await {
            Ok(()) => break true,
            Err(e) if matches!(e.kind(), ErrorKind::Lost | ErrorKind::NotHeld) => break false,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{fault}: renewing never settled: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    if survived {
        let lock = rival.lock(&name, options()).unwrap();
        let stolen = retrying("try_acquire", || lock.try_acquire()).await;
        tally.check(stolen.is_none(), format!("{fault}: lock granted twice"));
        tally.check(
            store.write(old),
            format!("{fault}: surviving holder's write rejected"),
        );
        holder.release().await.unwrap();
    } else {
        tally.check(!holder.is_held(), format!("{fault}: lost lease says held"));
        let lost = tokio::time::timeout(PATIENCE, holder.lost()).await;
        tally.check(
            matches!(lost, Ok(Some(_))),
            format!("{fault}: no lost signal"),
        );
    }
    tally.outcomes.push(format!(
        "{fault}: {}",
        if survived {
            "lease survived"
        } else {
            "lease reported lost"
        }
    ));
    let next = acquire(rival, &name).await;
    next_holder_checks(store, tally, old, &next, fault);
    next.release().await.unwrap();
}

/// A server restart with state kept (FerretDB, persistent Consul server).
async fn restart_server(
    url: &str,
    servers: &FaultServers,
    script: &str,
    server: &str,
    tally: &mut Tally,
) {
    let store = FencedStore::default();
    let name = unique("restart");
    let holder_client = connect(url).await;
    let holder = acquire(&holder_client, &name).await;
    tally.check(
        store.write(holder.fencing_token().unwrap()),
        "restart: holder's write rejected",
    );
    servers.script(script, "restart", server).await;
    tally.faults += 1;
    let rival = connect(url).await;
    survive_or_lose(holder, &rival, &store, tally, &format!("{server} restart")).await;
    tally_store(tally, &store);
}

/// A Consul dev agent restart: all state is gone. The loss must be reported
/// and the same client must lock again; fencing restarts with the server.
async fn restart_dev_agent(servers: &FaultServers, tally: &mut Tally) {
    let url = servers.consul_url("consul-dev", "dev");
    let name = unique("dev-restart");
    let client = connect(&url).await;
    let lease = acquire(&client, &name).await;
    servers.script("consul.sh", "restart", "consul-dev").await;
    tally.faults += 1;
    let lost = tokio::time::timeout(PATIENCE, lease.lost()).await;
    tally.check(
        matches!(lost, Ok(Some(_))),
        "dev agent restart: no lost signal",
    );
    tally.check(!lease.is_held(), "dev agent restart: lost lease says held");
    let again = acquire(&client, &name).await;
    tally.check(
        again.is_held(),
        "dev agent restart: the client cannot lock again",
    );
    let store = FencedStore::default(); // the new server lifetime
    tally.check(
        store.write(again.fencing_token().unwrap()),
        "dev agent restart: write rejected",
    );
    again.release().await.unwrap();
    tally_store(tally, &store);
}

/// Kills the leader of a three-server cluster under a held lease.
async fn kill_cluster_leader(servers: &FaultServers, tally: &mut Tally) {
    let leader = servers
        .script("consul.sh", "leader", "consul-cluster")
        .await;
    let followers: Vec<String> = (1..=3)
        .map(|n| servers.consul_url("consul-cluster", &format!("server{n}")))
        .filter(|url| url.trim_start_matches("consul://") != leader.trim_start_matches("http://"))
        .collect();
    assert_eq!(followers.len(), 2, "two followers besides {leader}");
    let store = FencedStore::default();
    let name = unique("leader-kill");
    let holder_client = connect(&followers[0]).await;
    let holder = acquire(&holder_client, &name).await;
    tally.check(
        store.write(holder.fencing_token().unwrap()),
        "leader kill: holder's write rejected",
    );
    servers
        .script("consul.sh", "kill-leader", "consul-cluster")
        .await;
    tally.faults += 1;
    let rival = connect(&followers[1]).await;
    survive_or_lose(holder, &rival, &store, tally, "cluster leader kill").await;
    tally_store(tally, &store);
    // The killed leader back, so later suites (the mixed one) find three.
    servers.script("consul.sh", "heal", "consul-cluster").await;
}

/// Adds a fenced store's counts to the backend's totals.
fn tally_store(tally: &mut Tally, store: &FencedStore) {
    let s = store.state();
    tally.grants += s.grants.len() as u64;
    tally.accepted += s.accepted;
    tally.rejected += s.rejected;
}

fn report(label: &str, tally: &Tally) {
    // Without fencing tokens (LDLM) nothing is written through a store.
    let writes = if tally.accepted + tally.rejected > 0 {
        format!(
            "writes accepted {}, stale writes rejected {}",
            tally.accepted, tally.rejected
        )
    } else {
        "judged by event order (no fencing tokens)".to_string()
    };
    println!(
        "faults {label}: grants checked {}, {writes}, faults injected {}, checks {}, violations {}",
        tally.grants,
        tally.faults,
        tally.checks,
        tally.violations.len()
    );
    for outcome in &tally.outcomes {
        println!("faults {label}: {outcome}");
    }
    assert!(
        tally.violations.is_empty(),
        "{label}: {:?}",
        tally.violations
    );
}

/// The holder process of [`ChildHolder`]: only does anything as a child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_holder() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [url, name, ttl_ms] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{CHILD_ENV}: {spec:?}");
    };
    let ttl = Duration::from_millis(ttl_ms.parse().unwrap());
    let client = Client::connect(url).await.unwrap();
    let lock = client.lock(name, LockOptions::mutex().ttl(ttl)).unwrap();
    let lease = lock.acquire(PATIENCE).await.unwrap();
    let token = lease
        .fencing_token()
        .map_or_else(|| "none".to_string(), |t| t.to_string());
    println!("fault-child: held {token}");
    let mut lines = std::io::BufReader::new(std::io::stdin()).lines();
    while let Some(Ok(line)) = tokio::task::block_in_place(|| lines.next()) {
        if line == "state" {
            let state = if lease.is_held() { "held" } else { "lost" };
            println!("fault-child: state {state} {token}");
        }
    }
}

/// Will tell when `lease` is reported lost, by this machine's clock.
/// Register it while the lease is held: a callback registered later runs
/// at once, at its registration's time.
fn loss_clock(lease: &Lease) -> tokio::sync::oneshot::Receiver<SystemTime> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    lease.on_lost(move |_| {
        let _ = tx.send(SystemTime::now());
    });
    rx
}

/// The time a [`loss_clock`] reports (bounded wait).
async fn lost_at(clock: tokio::sync::oneshot::Receiver<SystemTime>) -> Option<SystemTime> {
    tokio::time::timeout(PATIENCE, clock).await.ok()?.ok()
}

/// The first grant of `name` by the server after `since`.
fn granted_after(log: &ldlm_log::ServerLog, name: &str, since: SystemTime) -> Option<SystemTime> {
    log.grants(name).into_iter().find(|at| *at > since)
}

/// LDLM partition: the holder's proxy freezes past the TTL.
async fn ldlm_partition(url: &str, log: &ldlm_log::ServerLog, tally: &mut Tally) {
    let proxy = proxy::Proxy::start(address(url, "ldlm://")).await;
    let name = unique("partition");
    let cut_off = connect(&format!("ldlm://{}?max_retries=0", proxy.addr)).await;
    let lease = acquire(&cut_off, &name).await;
    let granted = SystemTime::now();
    let loss = loss_clock(&lease);
    proxy.freeze();
    tally.faults += 1;
    let other = connect(url).await;
    let next = acquire(&other, &name).await;
    tally.check(
        !lease.is_held(),
        "ldlm partition: the cut-off holder still believes it holds the lock granted to another",
    );
    let lost = lost_at(loss).await;
    let regranted = granted_after(log, &name, granted);
    tally.grants += 2;
    tally.check(lost.is_some(), "ldlm partition: no lost signal");
    tally.check(
        regranted.is_some(),
        "ldlm partition: the server's log shows no second grant",
    );
    if let (Some(lost), Some(regranted)) = (lost, regranted) {
        tally.check(
            lost < regranted,
            format!(
                "ldlm partition: the holder reported its loss {:?} after the lock was granted again",
                lost.duration_since(regranted).unwrap_or_default()
            ),
        );
        tally.outcomes.push(format!(
            "partition: loss reported {} ms before the next grant",
            regranted
                .duration_since(lost)
                .unwrap_or_default()
                .as_millis()
        ));
    }
    next.release().await.unwrap();
    drop(proxy);
}

/// LDLM kill -9 of a holder process: its connection ends, the server frees
/// the lock.
async fn ldlm_kill_holder(url: &str, tally: &mut Tally) {
    let name = unique("kill");
    let mut child = ChildHolder::spawn(url, &name, TTL);
    let token = tokio::task::block_in_place(|| child.held());
    tally.check(token.is_none(), "ldlm kill: a fencing token from LDLM");
    child.signal("-KILL");
    tally.faults += 1;
    let client = connect(url).await;
    let next = acquire(&client, &name).await;
    tally.grants += 2;
    tally.check(next.is_held(), "ldlm kill: the lock never came free");
    next.release().await.unwrap();
}

/// LDLM SIGSTOP past the TTL, then SIGCONT: the server frees the lock when
/// its timer runs out (the stopped holder's connection stays open), and the
/// woken holder knows it lost.
async fn ldlm_freeze_holder(url: &str, tally: &mut Tally) {
    let name = unique("freeze");
    let mut child = ChildHolder::spawn(url, &name, TTL);
    tokio::task::block_in_place(|| child.held());
    child.signal("-STOP");
    tally.faults += 1;
    let client = connect(url).await;
    let next = acquire(&client, &name).await;
    child.signal("-CONT");
    let says_held = tokio::task::block_in_place(|| child.says_held());
    tally.grants += 2;
    tally.check(
        !says_held,
        "ldlm freeze: the woken holder says it holds a lock granted to another",
    );
    next.release().await.unwrap();
}

/// LDLM server restart: every lease is reported lost (the server keeps no
/// state), before the restarted server grants the lock again; the same
/// client locks again.
async fn ldlm_restart(
    url: &str,
    servers: &FaultServers,
    log: &ldlm_log::ServerLog,
    tally: &mut Tally,
) {
    let name = unique("restart");
    let client = connect(url).await;
    let lease = acquire(&client, &name).await;
    let granted = SystemTime::now();
    let loss = loss_clock(&lease);
    servers.script("ldlm.sh", "restart", "ldlm").await;
    let lost = lost_at(loss).await;
    tally.faults += 1;
    let again = acquire(&client, &name).await;
    tally.grants += 2;
    tally.check(lost.is_some(), "ldlm restart: no lost signal");
    tally.check(!lease.is_held(), "ldlm restart: lost lease says held");
    tally.check(
        again.is_held(),
        "ldlm restart: the client cannot lock again",
    );
    if let (Some(lost), Some(regranted)) = (lost, granted_after(log, &name, granted)) {
        tally.check(
            lost < regranted,
            "ldlm restart: the loss was reported after the lock was granted again",
        );
    } else {
        tally.check(false, "ldlm restart: no second grant in the server's log");
    }
    again.release().await.unwrap();
}

fn address(url: &str, scheme: &str) -> SocketAddr {
    let rest = url.strip_prefix(scheme).unwrap();
    rest.split(['/', '?']).next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_stays_safe_under_faults() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(servers) = FaultServers::from_env() else {
        return;
    };
    let mut tally = Tally::default();
    let url = servers.consul_url("consul-dev", "dev");
    let proxied = |addr: SocketAddr| format!("consul://{addr}");
    partition(&url, address(&url, "consul://"), proxied, &mut tally).await;
    kill_holder(&url, &mut tally).await;
    freeze_holder(&url, &mut tally).await;
    restart_dev_agent(&servers, &mut tally).await;
    let server = servers.consul_url("consul-server", "server");
    restart_server(&server, &servers, "consul.sh", "consul-server", &mut tally).await;
    kill_cluster_leader(&servers, &mut tally).await;
    report("consul", &tally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferretdb_stays_safe_under_faults() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(servers) = FaultServers::from_env() else {
        return;
    };
    let mut tally = Tally::default();
    let url = servers.ferretdb_url();
    let proxied = |addr: SocketAddr| {
        format!("mongodb://{addr}/?directConnection=true&serverSelectionTimeoutMS=2000")
    };
    partition(&url, address(&url, "mongodb://"), proxied, &mut tally).await;
    kill_holder(&url, &mut tally).await;
    freeze_holder(&url, &mut tally).await;
    restart_server(&url, &servers, "ferretdb.sh", "ferretdb", &mut tally).await;
    report("ferretdb", &tally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stays_safe_under_faults() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(servers) = FaultServers::from_env() else {
        return;
    };
    let mut tally = Tally::default();
    let url = servers.postgres_url();
    let (user, rest) = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .expect("postgres://USER@HOST:PORT/DB");
    let (host, db) = rest.split_once('/').expect("a database in the URL");
    let proxied = |addr: SocketAddr| format!("postgres://{user}@{addr}/{db}?connect_timeout=2");
    partition(&url, host.parse().unwrap(), proxied, &mut tally).await;
    kill_holder(&url, &mut tally).await;
    freeze_holder(&url, &mut tally).await;
    restart_server(&url, &servers, "postgres.sh", "postgres", &mut tally).await;
    report("postgres", &tally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldlm_stays_safe_under_faults() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(servers) = FaultServers::from_env() else {
        return;
    };
    let Some(url) = servers.ldlm_url() else {
        return;
    };
    let log = ldlm_log::ServerLog::new(servers.ldlm_log());
    let mut tally = Tally::default();
    ldlm_partition(&url, &log, &mut tally).await;
    ldlm_kill_holder(&url, &mut tally).await;
    ldlm_freeze_holder(&url, &mut tally).await;
    ldlm_restart(&url, &servers, &log, &mut tally).await;
    report("ldlm", &tally);
}

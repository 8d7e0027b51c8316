//! polylock's side of the benchmark harness (bench/run.sh), per backend URL:
//!
//! - uncontended acquire+release (p50/p99), interleaved with the backend's
//!   raw floor (support/floors.rs) so both see the same machine, each going
//!   first every other time. Where the server waits for the lock (LDLM)
//!   this is `acquire(10 s)` (its `Lock` call) against the floor's `Lock` +
//!   `Unlock`, and `uncontended_try` is `try_acquire` against `TryLock` +
//!   `Unlock`; elsewhere `try_acquire`, whose requests `acquire` also makes
//!   on a free lock. On LDLM the floor's `Unlock` alone is also reported
//!   (`rpc_round_trip`, one RPC round trip);
//! - handoff: the holder starts releasing → a waiter parked in another
//!   client holds (p50/p99);
//! - contended throughput: 16 and 64 contenders on one name, as tasks of
//!   one client (`throughput_N_contenders`, the peers' shape: one api.Client,
//!   one MongoClient) and as one client each (`throughput_N_clients`); on a
//!   2-slot semaphore from one client; one client cycling over 1,000
//!   distinct names from 64 tasks. On Consul also the Raft writes per
//!   acquisition with 1, 16 and 64 contenders of one client (the agent's
//!   `applied_index` before and after: flat at 2 when waiters cost nothing);
//!   on MongoDB also the requests per handoff (at a proxy) among 1, 16 and
//!   64 waiters of one client (tests/support/handoffs.rs: flat when a
//!   release wakes one waiter);
//! - 10,000 leases held by one client: the time to take them, the p50
//!   latency of the first and of the last 1,000 acquisitions (holding many
//!   leases must not slow the next one), the requests it sends per minute
//!   while only holding (counted by a proxy, tests/support/counting_proxy.rs),
//!   resident memory per lease (after the client and one lease taken and
//!   released: the runtime and the client are not the leases'), leases lost.
//!
//! ```text
//! bench/run.sh                                   # every backend and peer, with a report
//! cargo bench -p polylock --bench scenarios -- memory:// consul://127.0.0.1:8500
//! cargo bench -p polylock --bench scenarios -- ldlm://127.0.0.1:3144
//! ```
//! Run the `leases` scenario in a process of its own for a meaningful
//! memory-per-lease figure (bench/run.sh does; see `POLYLOCK_BENCH_SCENARIOS`).
//! Prints one line per figure; with `POLYLOCK_BENCH_JSON=FILE` also appends
//! them to FILE as JSON lines (`backend`, `subject`, `metric`, `value`;
//! `POLYLOCK_BENCH_BACKEND` overrides the backend's label).
//! Knobs: `POLYLOCK_BENCH_ITERATIONS` (latency samples, default 200),
//! `POLYLOCK_BENCH_SECONDS` (throughput window, default 5),
//! `POLYLOCK_BENCH_LEASES` (default 10 000), `POLYLOCK_BENCH_RENEW_WINDOW`
//! (seconds of counting renewals, default 30), `POLYLOCK_BENCH_HANDOFF_SETTLE_MS`
//! (where the server waits, the pause between the waiter's call going out
//! and the release, default 10). With `POLYLOCK_TEST_LDLM_LOG` naming the
//! LDLM server's log at info level, the leases scenario also counts the
//! `Renew request` lines the server logged in the window, a check of the
//! proxy's count.

#[path = "../tests/support/counting_proxy.rs"]
mod counting_proxy;
#[path = "support/floors.rs"]
mod floors;
#[path = "../tests/support/handoffs.rs"]
mod handoffs;
#[path = "../tests/support/many_leases.rs"]
mod many_leases;
#[path = "../tests/support/own_collection.rs"]
mod own_collection;
#[path = "support/stats.rs"]
mod stats;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use counting_proxy::CountingProxy;
use floors::{Floor, LdlmFloor, LDLM_WAIT};
use polylock::{Client, ClientOptions, Event, LockOptions};

const WARMUP: usize = 20;

fn main() {
    let urls: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if urls.is_empty() {
        eprintln!("usage: cargo bench -p polylock --bench scenarios -- URL [URL...]");
        return;
    }
    let runtime = stats::runtime();
    for url in urls {
        runtime.block_on(run(&url));
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `memory`, `consul`, `mongodb` or `ldlm`, from the URL's scheme (TLS
/// schemes report as their backend's name), unless `POLYLOCK_BENCH_BACKEND`
/// names it (one backend on two servers: FerretDB's storage handlers).
fn backend(url: &str) -> String {
    if let Ok(label) = std::env::var("POLYLOCK_BENCH_BACKEND") {
        return label;
    }
    match url.split("://").next().unwrap_or(url) {
        "consul+https" => "consul".into(),
        "ldlms" => "ldlm".into(),
        scheme => scheme.into(),
    }
}

/// Prints a figure and appends it to `POLYLOCK_BENCH_JSON`, if set.
fn emit(backend: &str, subject: &str, metric: &str, value: f64) {
    println!("{backend:<8} {subject:<10} {metric:<40} {value:>14.3}");
    if let Ok(path) = std::env::var("POLYLOCK_BENCH_JSON") {
        let line = serde_json::json!({
            "backend": backend, "subject": subject, "metric": metric, "value": value,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// True if `POLYLOCK_BENCH_SCENARIOS` (comma-separated: `latency`,
/// `contended`, `leases`; default all) includes `scenario`.
fn wanted(scenario: &str) -> bool {
    std::env::var("POLYLOCK_BENCH_SCENARIOS")
        .map(|list| list.split(',').any(|s| s.trim() == scenario))
        .unwrap_or(true)
}

async fn run(url: &str) {
    let b = backend(url);
    if wanted("latency") {
        let iterations = stats::iterations(200);
        uncontended(url, &b, iterations).await;
        handoff(url, &b, iterations.min(100)).await;
    }
    if wanted("contended") {
        let window = Duration::from_secs(knob("POLYLOCK_BENCH_SECONDS", 5));
        let raft = raft_index_url(url);
        let counts: &[usize] = if raft.is_some() {
            &[1, 16, 64]
        } else {
            &[16, 64]
        };
        for &contenders in counts {
            let before = match &raft {
                Some(raft) => Some(applied_index(raft).await),
                None => None,
            };
            let run = contended(url, 1, contenders, Shape::OneClient, window).await;
            if let (Some(raft), Some(before)) = (&raft, before) {
                let writes = applied_index(raft).await - before;
                emit(
                    &b,
                    "polylock",
                    &format!("raft_writes_per_acquisition_{contenders}_contenders"),
                    writes as f64 / run.acquisitions.max(1) as f64,
                );
            }
            if contenders == 1 {
                continue;
            }
            run.emit(&b, &format!("{contenders}_contenders"));
            contended(url, 1, contenders, Shape::ClientEach, window)
                .await
                .emit(&b, &format!("{contenders}_clients"));
            contended(url, 2, contenders, Shape::OneClient, window)
                .await
                .emit(&b, &format!("{contenders}_contenders_2_slots"));
        }
        let rate = distinct_names(url, 1000, 64, window).await;
        emit(&b, "polylock", "throughput_1000_names_per_s", rate);
        if url.starts_with("mongodb") {
            // Requests (at a proxy) per handoff among one client's waiters.
            for waiters in [1, 16, 64] {
                let per_handoff = handoffs::requests_per_handoff(url, waiters).await;
                emit(
                    &b,
                    "polylock",
                    &format!("requests_per_handoff_{waiters}_waiters"),
                    per_handoff,
                );
            }
        }
    }
    if wanted("leases") {
        let leases = knob("POLYLOCK_BENCH_LEASES", 10_000);
        many_leases(url, &b, leases as usize).await;
    }
}

/// How a latency sample takes its uncontended lock.
#[derive(Clone, Copy)]
enum Take {
    /// `try_acquire`, against the floor's raw try.
    Try,
    /// `acquire(LDLM_WAIT)`, against the floor's raw acquire.
    Wait,
}

/// Uncontended acquire+release, interleaved with the raw floor.
async fn uncontended(url: &str, b: &str, iterations: usize) {
    let s = suffix();
    let client = Client::connect(url).await.unwrap();
    let lock = client
        .lock(&format!("bench/uncontended-{s}"), LockOptions::mutex())
        .unwrap();
    let mut floor = Floor::for_url(url, &format!("bench/raw-{s}")).await;
    // Where the server waits, acquire is a call of its own (LDLM's Lock).
    let takes: &[(&str, Take)] = if client.capabilities().server_wait {
        &[("uncontended", Take::Wait), ("uncontended_try", Take::Try)]
    } else {
        &[("uncontended", Take::Try)]
    };
    let mut ours = vec![Vec::new(); takes.len()];
    let mut raw = vec![Vec::new(); takes.len()];
    let mut round_trips = Vec::new();
    for i in 0..WARMUP + iterations {
        let keep = i >= WARMUP;
        for (k, &(_, take)) in takes.iter().enumerate() {
            // Each goes first every other time: neither always follows the other.
            let ours_first = (i + k) % 2 == 0;
            for our_turn in [ours_first, !ours_first] {
                if our_turn {
                    let started = Instant::now();
                    let lease = match take {
                        Take::Try => lock.try_acquire().await.unwrap().expect("uncontended"),
                        Take::Wait => lock.acquire(LDLM_WAIT).await.unwrap(),
                    };
                    lease.release().await.unwrap();
                    if keep {
                        ours[k].push(started.elapsed());
                    }
                } else if let Some(floor) = floor.as_mut() {
                    let started = Instant::now();
                    let release = match take {
                        Take::Try => floor.try_acquire_release().await,
                        Take::Wait => floor.acquire_release().await,
                    };
                    if keep {
                        raw[k].push(started.elapsed());
                        round_trips.extend(release);
                    }
                }
            }
        }
    }
    for (k, &(what, _)) in takes.iter().enumerate() {
        let m = stats::median(&mut ours[k]);
        emit(b, "polylock", &format!("{what}_p50_us"), micros(m));
        let p99 = stats::p99(&ours[k]);
        emit(b, "polylock", &format!("{what}_p99_us"), micros(p99));
        if floor.is_some() {
            let m = stats::median(&mut raw[k]);
            emit(b, "floor", &format!("{what}_p50_us"), micros(m));
            emit(
                b,
                "floor",
                &format!("{what}_p99_us"),
                micros(stats::p99(&raw[k])),
            );
        }
    }
    if !round_trips.is_empty() {
        let m = stats::median(&mut round_trips);
        emit(b, "floor", "rpc_round_trip_p50_us", micros(m));
        let p99 = stats::p99(&round_trips);
        emit(b, "floor", "rpc_round_trip_p99_us", micros(p99));
    }
    if let Some(floor) = floor {
        floor.close().await;
    }
}

/// Release starts → a waiter parked in a second client holds.
async fn handoff(url: &str, b: &str, iterations: usize) {
    let name = format!("bench/handoff-{}", suffix());
    let holder = Client::connect(url).await.unwrap();
    let (tx, mut waiting) = tokio::sync::mpsc::unbounded_channel();
    let observer = Arc::new(move |e: &Event| {
        if matches!(e, Event::WaitStarted { .. }) {
            let _ = tx.send(());
        }
    });
    let waiter = Client::from_options(ClientOptions::new(url).observer(observer))
        .await
        .unwrap();
    let held = holder.lock(&name, LockOptions::mutex()).unwrap();
    let wanted = waiter.lock(&name, LockOptions::mutex()).unwrap();
    // Where the server waits (LDLM), "wait started" means the waiter's call
    // is on its way; a pause (outside the sample) lets the server park it,
    // so a sample is a handoff to a parked waiter rather than a race of the
    // waiter's call with the release. Elsewhere the event comes once the
    // waiter found the lock held and waits for a change: no pause.
    let settle = if holder.capabilities().server_wait {
        Duration::from_millis(knob("POLYLOCK_BENCH_HANDOFF_SETTLE_MS", 10))
    } else {
        Duration::ZERO
    };
    // On LDLM, the same handoff with the floor's raw calls on connections of
    // their own (TryLock; a parked Lock; Unlock), sample for sample.
    let raw_name = format!("{name}-raw");
    let raw = match (
        LdlmFloor::for_url(url, &raw_name).await,
        LdlmFloor::for_url(url, &raw_name).await,
    ) {
        (Some(holder), Some(waiter)) => Some((holder, waiter)),
        _ => None,
    };
    let mut samples = Vec::new();
    let mut raw_samples = Vec::new();
    for i in 0..WARMUP / 4 + iterations {
        if let Some((holder, waiter)) = &raw {
            let (mut holder, mut waiter) = (holder.clone(), waiter.clone());
            let key = holder.try_lock().await;
            let (sent_tx, sent) = tokio::sync::oneshot::channel();
            let contender = tokio::spawn(async move {
                let call = waiter.lock(Duration::from_secs(60));
                let _ = sent_tx.send(());
                let key = call.await;
                (Instant::now(), waiter, key)
            });
            sent.await.unwrap();
            tokio::time::sleep(settle).await;
            let released = Instant::now();
            holder.unlock(key).await;
            let (got, mut waiter, key) = contender.await.unwrap();
            waiter.unlock(key).await;
            if i >= WARMUP / 4 {
                raw_samples.push(got - released);
            }
        }
        let lease = held.try_acquire().await.unwrap().expect("free");
        let lock = wanted.clone();
        let contender = tokio::spawn(async move {
            let lease = lock.acquire(Duration::from_secs(60)).await.unwrap();
            (Instant::now(), lease)
        });
        waiting.recv().await.unwrap();
        if !settle.is_zero() {
            tokio::time::sleep(settle).await;
        }
        let released = Instant::now();
        lease.release().await.unwrap();
        let (got, next) = contender.await.unwrap();
        next.release().await.unwrap();
        if i >= WARMUP / 4 {
            samples.push(got - released);
        }
    }
    let m = stats::median(&mut samples);
    emit(b, "polylock", "handoff_p50_us", micros(m));
    emit(
        b,
        "polylock",
        "handoff_p99_us",
        micros(stats::p99(&samples)),
    );
    if !raw_samples.is_empty() {
        let m = stats::median(&mut raw_samples);
        emit(b, "floor", "handoff_p50_us", micros(m));
        let p99 = stats::p99(&raw_samples);
        emit(b, "floor", "handoff_p99_us", micros(p99));
    }
}

/// How contenders are spread over clients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Tasks of one client (one session, one connection pool).
    OneClient,
    /// A client each.
    ClientEach,
}

/// What a contended run did.
struct Contended {
    rate: f64,
    acquisitions: u64,
    errors: u64,
}

impl Contended {
    /// Emits `throughput_{what}_per_s` and `errors_{what}`.
    fn emit(&self, b: &str, what: &str) {
        emit(
            b,
            "polylock",
            &format!("throughput_{what}_per_s"),
            self.rate,
        );
        emit(b, "polylock", &format!("errors_{what}"), self.errors as f64);
    }
}

/// `contenders` tasks taking and giving back one slot of a lock with
/// `limit` slots on one name, for `window`: acquisitions per second, and
/// how many acquisitions failed with an error (an overloaded server's).
async fn contended(
    url: &str,
    limit: u32,
    contenders: usize,
    shape: Shape,
    window: Duration,
) -> Contended {
    let name = format!("bench/contended-{}", suffix());
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..contenders {
        if i == 0 || shape == Shape::ClientEach {
            clients.push(Client::connect(url).await.unwrap());
        } else {
            clients.push(clients[0].clone());
        }
    }
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (name, done, errors) = (name.clone(), done.clone(), errors.clone());
            tokio::spawn(async move {
                let lock = client.lock(&name, LockOptions::semaphore(limit)).unwrap();
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    match lock.acquire(left).await {
                        Ok(lease) => match lease.release().await {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            // A lease lost before its release (an overloaded
                            // server) is an error of the run, not a crash.
                            Err(e) => {
                                eprintln!("contended release failed: {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        Err(e) if e.kind() == polylock::ErrorKind::Timeout => return,
                        Err(e) => {
                            eprintln!("contended acquire failed: {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let acquisitions = done.load(Ordering::Relaxed);
    Contended {
        rate: acquisitions as f64 / started.elapsed().as_secs_f64(),
        acquisitions,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// For a consul:// URL, the agent's `/v1/agent/self`, whose
/// `Stats.raft.applied_index` counts Raft writes.
fn raft_index_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("consul://")?;
    let host = rest.split(['/', '?']).next()?;
    Some(format!("http://{host}/v1/agent/self"))
}

/// The agent's Raft `applied_index` now.
async fn applied_index(agent_self: &str) -> u64 {
    let reply: serde_json::Value = reqwest::get(agent_self)
        .await
        .and_then(|r| r.error_for_status())
        .expect("the consul agent answers /v1/agent/self")
        .json()
        .await
        .expect("a JSON reply");
    reply["Stats"]["raft"]["applied_index"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("Stats.raft.applied_index")
}

/// Acquisitions per second of one client over `names` names from `tasks`
/// tasks (each task its own share of the names: never contended).
async fn distinct_names(url: &str, names: usize, tasks: usize, window: Duration) -> f64 {
    let prefix = format!("bench/names-{}", suffix());
    let client = Client::connect(url).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + window;
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let (client, prefix, done) = (client.clone(), prefix.clone(), done.clone());
            tokio::spawn(async move {
                let locks: Vec<_> = (t..names)
                    .step_by(tasks)
                    .map(|i| {
                        client
                            .lock(&format!("{prefix}/{i}"), LockOptions::mutex())
                            .unwrap()
                    })
                    .collect();
                for lock in locks.iter().cycle() {
                    if Instant::now() >= deadline {
                        return;
                    }
                    let lease = lock.try_acquire().await.unwrap().expect("uncontended name");
                    lease.release().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Resident memory of this process, in bytes. On glibc, free memory the
/// allocator keeps (from short-lived allocations) is handed back first, so
/// that what is counted is what is held.
fn resident_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `leases` leases held by one client (through a counting proxy where the
/// backend is a server): the time to take them, the p50 latency of the
/// first and of the last 1,000 acquisitions (flat when holding many leases
/// does not slow the next acquisition), memory per lease, requests per
/// minute while holding.
async fn many_leases(url: &str, b: &str, leases: usize) {
    // On MongoDB its names stay out of the collection later rows use.
    const COLLECTION: &str = "polylock_bench_leases";
    let mongo = url.starts_with("mongodb");
    let url = &match mongo {
        true => own_collection::own_collection(url, COLLECTION),
        false => url.to_string(),
    };
    let (client_url, proxy) = match proxied(url).await {
        Some((proxied, proxy)) => (proxied, Some(proxy)),
        None => (url.to_string(), None),
    };
    let prefix = format!("bench/leases-{}", suffix());
    let client = Client::connect(&client_url).await.unwrap();
    // What the process and the client cost once (the runtime, the keeper,
    // a backend's connections) is not the leases': one lease taken and
    // released first, and the latency slots made, before counting.
    client
        .lock(&format!("{prefix}/warm-up"), LockOptions::mutex())
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .expect("a free name")
        .release()
        .await
        .unwrap();
    let latencies: Vec<AtomicU64> = (0..leases).map(|_| AtomicU64::new(0)).collect();
    let before = resident_bytes();
    let acquired = Instant::now();
    let held =
        many_leases::take_many_timed(&client, &prefix, leases, LockOptions::mutex(), &latencies)
            .await;
    let took = acquired.elapsed();
    let per_lease = resident_bytes().saturating_sub(before) as f64 / leases as f64;
    emit(
        b,
        "polylock",
        &format!("{leases}_leases_acquire_s"),
        took.as_secs_f64(),
    );
    // In the order the acquisitions started.
    let latencies: Vec<Duration> = latencies
        .iter()
        .map(|l| Duration::from_nanos(l.load(Ordering::Relaxed)))
        .collect();
    let k = (leases / 2).clamp(1, 1000).min(leases);
    for (which, range) in [("first", 0..k), ("last", leases - k..leases)] {
        if range.is_empty() {
            continue;
        }
        let p50 = stats::median(&mut latencies[range].to_vec());
        emit(
            b,
            "polylock",
            &format!("{leases}_leases_acquire_{which}_{k}_p50_us"),
            micros(p50),
        );
    }
    emit(
        b,
        "polylock",
        &format!("{leases}_leases_rss_bytes_per_lease"),
        per_lease,
    );
    if let Some(proxy) = proxy {
        let window = Duration::from_secs(knob("POLYLOCK_BENCH_RENEW_WINDOW", 30));
        let server_log = (b == "ldlm")
            .then(|| std::env::var("POLYLOCK_TEST_LDLM_LOG").ok())
            .flatten()
            .map(|path| (std::fs::metadata(&path).map_or(0, |m| m.len()), path));
        let start = proxy.requests();
        // A measurement window, not synchronisation: the keeper renews on its own.
        tokio::time::sleep(window).await;
        let per_minute = (proxy.requests() - start) as f64 * 60.0 / window.as_secs_f64();
        emit(
            b,
            "polylock",
            &format!("{leases}_leases_requests_per_min"),
            per_minute,
        );
        if let Some((offset, path)) = server_log {
            // Lines the server logged in the window (at info level only; a
            // warn-level log has none, and then there is nothing to report).
            let logged = renew_lines_since(&path, offset);
            if logged > 0 {
                let per_minute = logged as f64 * 60.0 / window.as_secs_f64();
                emit(
                    b,
                    "polylock",
                    &format!("{leases}_leases_server_renews_per_min"),
                    per_minute,
                );
            }
        }
    }
    let lost = held.iter().filter(|l| !l.is_held()).count();
    emit(b, "polylock", &format!("{leases}_leases_lost"), lost as f64);
    futures_util::future::join_all(held.iter().map(|l| l.release())).await;
    if mongo {
        drop((held, client));
        own_collection::empty_own_collection(url, COLLECTION).await;
    }
}

/// `"msg":"Renew request"` lines in an LDLM server's log after byte `offset`.
fn renew_lines_since(path: &str, offset: u64) -> u64 {
    use std::io::{BufRead, Seek};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return 0;
    }
    std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|line| {
            line.windows(RENEW_LINE.len())
                .any(|w| w == RENEW_LINE.as_bytes())
        })
        .count() as u64
}

const RENEW_LINE: &str = r#""msg":"Renew request""#;

/// The URL through a counting proxy (see [`CountingProxy::in_front_of`]).
async fn proxied(url: &str) -> Option<(String, CountingProxy)> {
    CountingProxy::in_front_of(url).await
}

//! The Rust load process of the soak test (tests/soak/run.sh), built as the
//! `soak` example of polylock-cli. It drives every backend given on the
//! command line through the blocking API (watches through the async one)
//! until STOP_FILE exists or MAX_SECONDS pass, and appends its counters to
//! STATS_FILE every few seconds. The workload and the stats line format are
//! the same in every language (tests/soak/README.md):
//!
//! ```text
//! soak STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...
//! ```

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use polylock::blocking::Client;
use polylock::{ErrorKind, LockOptions};

type Failure = Box<dyn std::error::Error>;

const LANG: &str = "rust";
const STATS_EVERY: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(60);
const LEASE_TTL: Duration = Duration::from_secs(3);
const LEASE_HOLD: Duration = Duration::from_secs(8);
const SEM_LIMIT: u32 = 3;
const MAX_ERROR_LINES: u64 = 50;

/// One backend's counters, shared by its threads.
#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    lost: AtomicU64,
    lost_after_release: AtomicU64,
    errors: AtomicU64,
    waits: AtomicU64,
    long_holds: AtomicU64,
    connects: AtomicU64,
    watch_events: AtomicU64,
}

/// What every thread of one backend shares.
struct Backend {
    name: String,
    url: String,
    run: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    error_lines: Arc<AtomicU64>,
    pause: Duration,
}

impl Backend {
    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn error(&self, what: &str, err: impl Display) {
        self.add(&self.counters.errors, 1);
        if self.error_lines.fetch_add(1, Ordering::Relaxed) < MAX_ERROR_LINES {
            eprintln!("soak ({LANG}): {}: {what}: {err}", self.name);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `total` in short steps; false when told to stop meanwhile.
    fn sleep(&self, total: Duration) -> bool {
        let end = Instant::now() + total;
        while !self.stopped() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(250)));
        }
        false
    }
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [stats, stop_file, run, max_seconds, backends @ ..] = args.as_slice() else {
        return Err("usage: soak STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...".into());
    };
    let max = Duration::from_secs(max_seconds.parse()?);
    let pause = Duration::from_millis(
        std::env::var("POLYLOCK_SOAK_PAUSE_MS")
            .ok()
            .map_or(Ok(1000), |v| v.parse())?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let error_lines = Arc::new(AtomicU64::new(0));
    let mut all = Vec::new();
    let mut threads = Vec::new();
    for spec in backends {
        let (name, url) = spec.split_once('=').ok_or("BACKEND=URL expected")?;
        let backend = Arc::new(Backend {
            name: name.to_string(),
            url: url.to_string(),
            run: run.clone(),
            stop: stop.clone(),
            counters: Arc::default(),
            error_lines: error_lines.clone(),
            pause,
        });
        let client = Client::connect(url)?;
        for worker in 0..2 {
            let (b, c) = (backend.clone(), client.clone());
            threads.push(std::thread::spawn(move || cycles(&b, &c, worker)));
        }
        let (b, c) = (backend.clone(), client.clone());
        threads.push(std::thread::spawn(move || long_leases(&b, &c)));
        if client.capabilities().event_stream {
            let (b, c) = (backend.clone(), client.clone());
            threads.push(std::thread::spawn(move || watches(&b, &c)));
        }
        all.push(backend);
    }
    let started = Instant::now();
    loop {
        let done = std::path::Path::new(stop_file).exists() || started.elapsed() >= max;
        if done {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        write_stats(stats, &all)?;
        std::thread::sleep(STATS_EVERY);
    }
    for thread in threads {
        if thread.join().is_err() {
            eprintln!("soak ({LANG}): a load thread panicked");
            error_lines.fetch_add(1, Ordering::Relaxed);
            if let Some(b) = all.first() {
                b.add(&b.counters.errors, 1);
            }
        }
    }
    write_stats(stats, &all)?;
    Ok(())
}

/// Appends one line per backend: `UNIX_TS BACKEND ops=N lost=N ...`.
fn write_stats(stats: &str, all: &[Arc<Backend>]) -> Result<(), Failure> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let mut text = String::new();
    for b in all {
        let c = &b.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        text.push_str(&format!(
            "{now:.3}\t{}\tops={}\tlost={}\tlost_after_release={}\terrors={}\twaits={}\tlong_holds={}\tconnects={}\twatch_events={}\n",
            b.name,
            get(&c.ops),
            get(&c.lost),
            get(&c.lost_after_release),
            get(&c.errors),
            get(&c.waits),
            get(&c.long_holds),
            get(&c.connects),
            get(&c.watch_events),
        ));
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stats)?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// A little jitter (0..n milliseconds) from the clock.
fn jitter(n: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_millis(nanos % n.max(1))
}

/// Takes `name` (waiting), holds it `hold`, releases it.
fn hold_shared(b: &Backend, client: &Client, name: &str, options: LockOptions, hold: Duration) {
    let lock = match client.lock(name, options) {
        Ok(lock) => lock,
        Err(e) => return b.error("lock", e),
    };
    let began = Instant::now();
    match lock.acquire(WAIT) {
        Ok(guard) => {
            if began.elapsed() >= Duration::from_millis(10) {
                b.add(&b.counters.waits, 1);
            }
            let loss = watch_loss(b, &guard);
            std::thread::sleep(hold);
            release(b, &guard, &loss);
        }
        Err(e) => b.error(&format!("acquire {name}"), e),
    }
}

/// What a guard's lost callback saw: a loss while held, or a loss
/// reported once its release had begun (a release that then succeeds: the
/// lease was not lost, the report is spurious).
#[derive(Default)]
struct Loss {
    releasing: AtomicBool,
    lost: AtomicBool,
}

/// Registers a lost callback on `guard`.
fn watch_loss(b: &Backend, guard: &polylock::blocking::Guard) -> Arc<Loss> {
    let loss = Arc::new(Loss::default());
    let (seen, counters, backend) = (loss.clone(), b.counters.clone(), b.name.clone());
    guard.on_lost(move |event| {
        let late = seen.releasing.load(Ordering::SeqCst);
        eprintln!(
            "soak ({LANG}): {backend}: lost callback{}: {} holder {}: {}",
            if late { " after release began" } else { "" },
            event.name,
            event.holder,
            event.reason
        );
        if late {
            counters.lost_after_release.fetch_add(1, Ordering::Relaxed);
        } else {
            seen.lost.store(true, Ordering::SeqCst);
        }
    });
    loss
}

/// Releases a guard, counting a loss (seen by its callback while held, or
/// by the release) once.
fn release(b: &Backend, guard: &polylock::blocking::Guard, loss: &Loss) {
    loss.releasing.store(true, Ordering::SeqCst);
    match guard.release() {
        Ok(()) => b.add(&b.counters.ops, 2),
        Err(e) if e.kind() == ErrorKind::Lost => {
            eprintln!(
                "soak ({LANG}): {}: release of {}: {e}",
                b.name,
                guard.name()
            );
            loss.lost.store(true, Ordering::SeqCst);
        }
        Err(e) => b.error("release", e),
    }
    if loss.lost.load(Ordering::SeqCst) {
        b.add(&b.counters.lost, 1);
        eprintln!("soak ({LANG}): {}: lease on {} lost", b.name, guard.name());
    }
}

/// The short-operation loop: uncontended try_acquire/release, a contended
/// mutex, a semaphore, and (worker 0) a connect/close cycle.
fn cycles(b: &Backend, client: &Client, worker: u32) {
    let own = format!("soak/{}/{LANG}/w{worker}/u", b.run);
    let mutex = format!("soak/{}/mutex", b.run);
    let sem = format!("soak/{}/sem", b.run);
    let mut round: u64 = 0;
    while !b.stopped() {
        round += 1;
        match client.lock(&own, LockOptions::mutex()) {
            Ok(lock) => {
                for _ in 0..3 {
                    match lock.try_acquire() {
                        Ok(Some(guard)) => {
                            let loss = watch_loss(b, &guard);
                            release(b, &guard, &loss);
                        }
                        Ok(None) => b.error("try_acquire", format!("{own} busy")),
                        Err(e) => b.error("try_acquire", e),
                    }
                }
            }
            Err(e) => b.error("lock", e),
        }
        hold_shared(
            b,
            client,
            &mutex,
            LockOptions::mutex(),
            Duration::from_millis(20) + jitter(60),
        );
        hold_shared(
            b,
            client,
            &sem,
            LockOptions::semaphore(SEM_LIMIT),
            Duration::from_millis(50) + jitter(100),
        );
        if worker == 0 && round.is_multiple_of(3) {
            connect_cycle(b);
        }
        b.sleep(b.pause + jitter(b.pause.as_millis() as u64 / 2 + 1));
    }
}

/// Connects a new client, takes and releases one lock, drops the client.
fn connect_cycle(b: &Backend) {
    let name = format!("soak/{}/{LANG}/connect", b.run);
    let client = match Client::connect(&b.url) {
        Ok(client) => client,
        Err(e) => return b.error("connect", e),
    };
    match client
        .lock(&name, LockOptions::mutex())
        .and_then(|l| l.try_acquire())
    {
        Ok(Some(guard)) => {
            let loss = watch_loss(b, &guard);
            release(b, &guard, &loss);
        }
        Ok(None) => b.error("connect try_acquire", format!("{name} busy")),
        Err(e) => b.error("connect try_acquire", e),
    }
    drop(client);
    b.add(&b.counters.connects, 1);
}

/// Holds a lease of LEASE_TTL for LEASE_HOLD (renewed by the keeper a few
/// times), checks it is still held, releases it; again and again.
fn long_leases(b: &Backend, client: &Client) {
    let name = format!("soak/{}/{LANG}/lease", b.run);
    let lock = match client.lock(&name, LockOptions::mutex().ttl(LEASE_TTL)) {
        Ok(lock) => lock,
        Err(e) => return b.error("lock", e),
    };
    while !b.stopped() {
        match lock.acquire(WAIT) {
            Ok(guard) => {
                let loss = watch_loss(b, &guard);
                let full = b.sleep(LEASE_HOLD);
                if !guard.is_held() {
                    eprintln!("soak ({LANG}): {}: {name} not held at the end", b.name);
                    loss.lost.store(true, Ordering::SeqCst);
                }
                release(b, &guard, &loss);
                if full {
                    b.add(&b.counters.long_holds, 1);
                }
            }
            Err(e) => b.error("acquire lease", e),
        }
        b.sleep(Duration::from_secs(1));
    }
}

/// Watches the shared mutex, counting its events; a new watch every 30 s.
fn watches(b: &Backend, client: &Client) {
    let name = format!("soak/{}/mutex", b.run);
    while !b.stopped() {
        let mut events = match client.as_async().watch(&name) {
            Ok(events) => events,
            Err(e) => {
                b.error("watch", e);
                b.sleep(Duration::from_secs(5));
                continue;
            }
        };
        let began = Instant::now();
        while !b.stopped() && began.elapsed() < Duration::from_secs(30) {
            let step = polylock::blocking::block_on(async move {
                let got = tokio::time::timeout(Duration::from_secs(1), events.next()).await;
                (events, got)
            });
            match step {
                Ok((back, Ok(Some(_)))) => {
                    events = back;
                    b.add(&b.counters.watch_events, 1);
                }
                Ok((back, Err(_elapsed))) => events = back,
                Ok((_, Ok(None))) => {
                    b.error("watch", "the event stream ended");
                    break;
                }
                Err(e) => {
                    b.error("watch", e);
                    break;
                }
            }
        }
    }
}

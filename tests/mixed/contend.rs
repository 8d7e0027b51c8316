//! The Rust contender of the mixed-client fault suite (tests/mixed/run.sh
//! has the whole protocol; tests/mixed/contenders.sh builds it), built as
//! the `mixed-contend` example of polylock-cli (a crate that already has
//! polylock and libc).
//!
//! ```text
//! mixed-contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
//! mixed-contend clock        print "rust NS" (the clock probe)
//! ```
//!
//! One blocking client on `URL`; one lock handle per name of `NAMES`
//! (`NAME=LIMIT,…`: limit 1 a mutex, more a semaphore), made when first
//! picked. Each round (until the file `STOP` exists, then a `done` line):
//! pick a name with splitmix64 seeded by `SEED`; acquire (20 s timeout);
//! register a lost callback; write `WRITE NAME TOKEN ID` to the fenced
//! store on the Unix socket `STORE`; hold `HOLD_MS`; write again; release.
//! Every step is one line `WHAT LANG PID ID NAME TOKEN T0 T1 RESULT`
//! appended to `LOG` in one write(2); T0/T1 are CLOCK_MONOTONIC in ns, read
//! through libc (`std::time::Instant` reads that clock but does not show
//! its value).
//!
//! Rust only: `POLYLOCK_CONTEND_THREADS=N` runs N round loops on the one
//! client (IDs `rust-PID.T-SEQ`, T from 1), and
//! `POLYLOCK_CONTEND_FORCE_MS=MS` adds a thread that every MS ms (± half,
//! by the PRNG) force-releases a random name through `Client::force_release`
//! and logs `force rust PID - NAME - T0 T1 RESULT`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polylock::blocking::{Client, Lock};
use polylock::{ErrorKind, LockOptions};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How long an acquisition may wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connecting to the backend is retried on connection errors.
const CONNECT_FOR: Duration = Duration::from_secs(30);
/// Tries (50 ms apart) to (re)connect to the fenced store.
const STORE_TRIES: u32 = 5;
/// Longest wait for one store reply.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [clock] if clock == "clock" => {
            println!("rust {}", monotonic_ns());
            Ok(())
        }
        [run, rest @ ..] if run == "run" && rest.len() == 8 => {
            Config::parse(rest).and_then(run_all)
        }
        _ => Err(
            "usage: mixed-contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | \
                  mixed-contend clock"
                .into(),
        ),
    };
    if let Err(error) = outcome {
        eprintln!("contend (rust): {error}");
        std::process::exit(1);
    }
}

/// The arguments of `run`.
struct Config {
    url: String,
    log: Log,
    store: PathBuf,
    names: Vec<(String, u32)>,
    ttl: Duration,
    hold: Duration,
    seed: u64,
    stop: PathBuf,
    pid: u32,
}

impl Config {
    fn parse(args: &[String]) -> Result<Config, Failure> {
        let [url, log, store, names, ttl_ms, hold_ms, seed, stop] = args else {
            return Err("run takes 8 arguments".into());
        };
        let names = names
            .split(',')
            .map(|entry| {
                let (name, limit) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("NAMES entry {entry:?} is not NAME=LIMIT"))?;
                Ok((name.to_string(), limit.parse::<u32>()?))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        if names.is_empty() {
            return Err("NAMES is empty".into());
        }
        Ok(Config {
            url: url.clone(),
            log: Log::open(log)?,
            store: PathBuf::from(store),
            names,
            ttl: Duration::from_millis(ttl_ms.parse()?),
            hold: Duration::from_millis(hold_ms.parse()?),
            seed: seed.parse()?,
            stop: PathBuf::from(stop),
            pid: std::process::id(),
        })
    }
}

/// Runs the round loops (and the force thread), then logs `done`.
fn run_all(config: Config) -> Result<(), Failure> {
    let threads: u32 = match std::env::var("POLYLOCK_CONTEND_THREADS") {
        Ok(n) => n.parse()?,
        Err(_) => 1,
    };
    let force_ms: Option<u64> = match std::env::var("POLYLOCK_CONTEND_FORCE_MS") {
        Ok(ms) if !ms.is_empty() => Some(ms.parse()?),
        _ => None,
    };
    let client = connect(&config.url)?;
    let config = Arc::new(config);
    let finished = Arc::new(AtomicBool::new(false));
    let force = force_ms.map(|ms| {
        let (config, client, finished) = (config.clone(), client.clone(), finished.clone());
        std::thread::spawn(move || force_loop(&config, &client, ms, &finished))
    });
    let loops: Vec<_> = (1..=threads.max(1))
        .map(|t| {
            let (config, client) = (config.clone(), client.clone());
            let who = if threads > 1 {
                format!("{}.{t}", config.pid)
            } else {
                config.pid.to_string()
            };
            std::thread::spawn(move || rounds(&config, &client, &who, u64::from(t - 1)))
        })
        .collect();
    let mut outcome = Ok(());
    for handle in loops {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => outcome = Err(error),
            Err(_) => outcome = Err("a round loop panicked".into()),
        }
    }
    finished.store(true, Ordering::SeqCst);
    if let Some(handle) = force {
        let _ = handle.join();
    }
    outcome?;
    let now = monotonic_ns().to_string();
    let pid = config.pid.to_string();
    config
        .log
        .line(&["done", "rust", &pid, "-", "-", "-", &now, &now, "-"]);
    Ok(())
}

/// Connects, retrying connection errors for up to [`CONNECT_FOR`].
fn connect(url: &str) -> Result<Client, Failure> {
    let started = Instant::now();
    loop {
        match Client::connect(url) {
            Ok(client) => return Ok(client),
            Err(error)
                if error.kind() == ErrorKind::Connection && started.elapsed() < CONNECT_FOR =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// One round loop: rounds until `STOP` exists. `who` is the PID part of
/// the IDs, `stream` which PRNG stream (thread) this is.
fn rounds(config: &Config, client: &Client, who: &str, stream: u64) -> Result<(), Failure> {
    let pid = config.pid.to_string();
    let mut rng = SplitMix64(config.seed.wrapping_add(stream));
    let mut store = Store::new(&config.store);
    let mut locks: HashMap<String, Lock> = HashMap::new();
    for seq in 1u64.. {
        if config.stop.exists() {
            return Ok(());
        }
        let (name, limit) = &config.names[rng.below(config.names.len())];
        let id = format!("rust-{who}-{seq}");
        let lock = match locks.get(name) {
            Some(lock) => lock,
            None => {
                let options = if *limit > 1 {
                    LockOptions::semaphore(*limit)
                } else {
                    LockOptions::mutex()
                };
                let lock = client.lock(name, options.ttl(config.ttl))?;
                locks.entry(name.clone()).or_insert(lock)
            }
        };
        let log = |what: &str, token: &str, t0: u64, t1: u64, result: &str| {
            let (t0, t1) = (t0.to_string(), t1.to_string());
            config
                .log
                .line(&[what, "rust", &pid, &id, name, token, &t0, &t1, result]);
        };
        let t0 = monotonic_ns();
        let acquired = lock.acquire(ACQUIRE_TIMEOUT);
        let t1 = monotonic_ns();
        let guard = match acquired {
            Ok(guard) => guard,
            Err(error) if error.kind() == ErrorKind::Timeout => {
                log("acquire", "-", t0, t1, "timeout");
                continue;
            }
            Err(error) => {
                log(
                    "acquire",
                    "-",
                    t0,
                    t1,
                    &format!("error:{}", error.kind().code()),
                );
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let token = guard
            .fencing_token()
            .map_or_else(|| "-".to_string(), |t| t.to_string());
        log("acquire", &token, t0, t1, "ok");

        // Lost: once per lease, never after a normal release.
        let ended = Arc::new(AtomicBool::new(false));
        {
            let ended = ended.clone();
            let line = [id.clone(), name.clone(), token.clone()];
            let (log_file, pid) = (config.log.clone(), pid.clone());
            guard.on_lost(move |_| {
                if !ended.swap(true, Ordering::SeqCst) {
                    let now = monotonic_ns().to_string();
                    let [id, name, token] = &line;
                    log_file.line(&["lost", "rust", &pid, id, name, token, &now, &now, "-"]);
                }
            });
        }

        for pause in [Some(config.hold), None] {
            let t0 = monotonic_ns();
            let result = store.write(name, &token, &id);
            let t1 = monotonic_ns();
            log("write", &token, t0, t1, result);
            if let Some(hold) = pause {
                std::thread::sleep(hold);
            }
        }

        for _ in 0..2 {
            let t0 = monotonic_ns();
            let released = guard.release();
            let t1 = monotonic_ns();
            match released {
                Ok(()) => {
                    ended.store(true, Ordering::SeqCst);
                    log("release", &token, t0, t1, "ok");
                    break;
                }
                Err(error) if error.kind() == ErrorKind::Lost => {
                    log("release", &token, t0, t1, "lost");
                    break;
                }
                Err(error) => log(
                    "release",
                    &token,
                    t0,
                    t1,
                    &format!("error:{}", error.kind().code()),
                ),
            }
        }
        // A lease still held after two failed releases is released by the
        // guard's drop (in the background when the backend is unreachable).
        drop(guard);
    }
    Ok(())
}

/// Every `ms` ms (± half, by the PRNG), force-releases a random name.
fn force_loop(config: &Config, client: &Client, ms: u64, finished: &AtomicBool) {
    let pid = config.pid.to_string();
    let mut rng = SplitMix64(config.seed ^ 0x666f_7263_6500_0000);
    while !finished.load(Ordering::SeqCst) && !config.stop.exists() {
        let pause = ms / 2 + rng.next() % (ms + 1);
        let until = Instant::now() + Duration::from_millis(pause);
        while Instant::now() < until {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        let (name, _) = &config.names[rng.below(config.names.len())];
        let (client, target) = (client.as_async().clone(), name.clone());
        let t0 = monotonic_ns();
        let outcome =
            polylock::blocking::block_on(async move { client.force_release(&target).await });
        let t1 = monotonic_ns();
        let result = match outcome {
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(error)) | Err(error) => format!("error:{}", error.kind().code()),
        };
        let (t0, t1) = (t0.to_string(), t1.to_string());
        config
            .log
            .line(&["force", "rust", &pid, "-", name, "-", &t0, &t1, &result]);
    }
}

/// The history file, opened O_APPEND; each line goes out in one write(2).
#[derive(Clone)]
struct Log(Arc<File>);

impl Log {
    fn open(path: &str) -> Result<Log, Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(path)?;
        Ok(Log(Arc::new(file)))
    }

    /// Appends `fields` joined by spaces and a newline, in one write.
    fn line(&self, fields: &[&str]) {
        let mut text = fields.join(" ");
        text.push('\n');
        match (&*self.0).write(text.as_bytes()) {
            Ok(n) if n == text.len() => {}
            Ok(n) => eprintln!("contend (rust): short log write ({n} of {})", text.len()),
            Err(error) => eprintln!("contend (rust): writing the log: {error}"),
        }
    }
}

/// A connection to the fenced store (`WRITE NAME TOKEN ID` → `OK` or
/// `STALE HIGHEST`), reconnected when it fails.
struct Store {
    path: PathBuf,
    conn: Option<(UnixStream, BufReader<UnixStream>)>,
}

impl Store {
    fn new(path: &Path) -> Store {
        let mut store = Store {
            path: path.to_path_buf(),
            conn: None,
        };
        store.reconnect();
        store
    }

    /// Up to [`STORE_TRIES`] connection attempts, 50 ms apart.
    fn reconnect(&mut self) {
        self.conn = None;
        for attempt in 0..STORE_TRIES {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            let Ok(stream) = UnixStream::connect(&self.path) else {
                continue;
            };
            let ready = stream
                .set_read_timeout(Some(STORE_TIMEOUT))
                .and_then(|()| stream.set_write_timeout(Some(STORE_TIMEOUT)))
                .and_then(|()| stream.try_clone());
            if let Ok(reader) = ready {
                self.conn = Some((stream, BufReader::new(reader)));
                return;
            }
        }
    }

    /// One write: `ok`, `stale` or `error` (the connection failed; it is
    /// reconnected for the next write).
    fn write(&mut self, name: &str, token: &str, id: &str) -> &'static str {
        if self.conn.is_none() {
            self.reconnect();
        }
        let Some((stream, reader)) = self.conn.as_mut() else {
            return "error";
        };
        let request = format!("WRITE {name} {token} {id}\n");
        let mut reply = String::new();
        let answered = stream
            .write_all(request.as_bytes())
            .and_then(|()| reader.read_line(&mut reply));
        match answered {
            Ok(_) if reply.trim_end() == "OK" => "ok",
            Ok(_) if reply.starts_with("STALE") => "stale",
            _ => {
                self.reconnect();
                "error"
            }
        }
    }
}

/// splitmix64, the PRNG every contender uses to pick names.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`next() % n`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive
    // pointer to a local.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    // CLOCK_MONOTONIC's fields are never negative.
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

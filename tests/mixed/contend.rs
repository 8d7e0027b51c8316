//! The Rust contender of the mixed-client run (tests/mixed/run.sh), built as
//! the `mixed-contend` example of polylock-cli (a crate that already has
//! polylock and libc): takes lock `NAME` on `URL` `ROUNDS` times through the
//! blocking API and, inside each hold, appends "start rust TOKEN NS", holds
//! it `HOLD_MS` milliseconds (the workload), then appends "end rust TOKEN NS"
//! to `LOG`. TOKEN is the fencing token, "-" when the backend has none
//! (LDLM); NS is `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds, the clock
//! every contender reads (tests/mixed/check.py). `std::time::Instant` reads
//! the same clock on Linux but does not show its value, so it is read here
//! through libc.
//!
//! ```text
//! mixed-contend URL NAME ROUNDS LOG HOLD_MS
//! mixed-contend clock        print "rust NS" (the clock probe)
//! ```

use std::io::Write;
use std::time::Duration;

use polylock::blocking::Client;
use polylock::LockOptions;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [clock] if clock == "clock" => {
            println!("rust {}", monotonic_ns()?);
            Ok(())
        }
        [url, name, rounds, log, hold_ms] => contend(
            url,
            name,
            rounds.parse()?,
            log,
            Duration::from_millis(hold_ms.parse()?),
        ),
        _ => Err("usage: mixed-contend URL NAME ROUNDS LOG HOLD_MS | mixed-contend clock".into()),
    }
}

/// Takes the lock `rounds` times, logging each hold.
fn contend(url: &str, name: &str, rounds: u32, log: &str, hold: Duration) -> Result<(), Failure> {
    let client = Client::connect(url)?;
    let lock = client.lock(name, LockOptions::mutex())?;
    for _ in 0..rounds {
        lock.synchronize(Duration::from_secs(120), |guard| -> Result<(), Failure> {
            let token = guard.fencing_token();
            record(log, "start", token)?;
            std::thread::sleep(hold);
            record(log, "end", token)
        })??;
    }
    Ok(())
}

/// Appends "WHAT rust TOKEN NS" to `log` in one write.
fn record(log: &str, what: &str, token: Option<u64>) -> Result<(), Failure> {
    let token = token.map_or_else(|| "-".to_string(), |t| t.to_string());
    let line = format!("{what} rust {token} {}\n", monotonic_ns()?);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    out.write_all(line.as_bytes())?;
    Ok(())
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
fn monotonic_ns() -> Result<u64, Failure> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive
    // pointer to a local.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let seconds = u64::try_from(now.tv_sec)?;
    let nanos = u64::try_from(now.tv_nsec)?;
    Ok(seconds * 1_000_000_000 + nanos)
}

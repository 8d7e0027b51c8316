//! The LDLM test server's log (`POLYLOCK_TEST_LDLM_LOG`, written at info
//! level by tests/servers/ldlm.sh): one JSON line per request and reply,
//! naming the lock. Tests count calls in it, and wait (bounded) for a call
//! to have reached the server.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Bound for waiting on a line to appear.
#[allow(dead_code)] // not every test binary waits on the log
const APPEAR_WITHIN: Duration = Duration::from_secs(30);

pub struct ServerLog {
    path: PathBuf,
}

impl ServerLog {
    pub fn new(path: impl Into<PathBuf>) -> ServerLog {
        ServerLog { path: path.into() }
    }

    /// Lines whose message is `msg` (`"Lock request"`, `"TryLock request"`,
    /// `"Renew request"`, `"Lock response"`, …) about lock `name`.
    pub fn lines(&self, msg: &str, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        let msg = format!("\"msg\":\"{msg}\"");
        let lock = format!("\"lock\":\"{name}\"");
        text.lines()
            .filter(|line| line.contains(&msg) && line.contains(&lock))
            .map(str::to_string)
            .collect()
    }

    /// When the server granted `name` (its `Lock`/`TryLock` replies with
    /// `"locked":true`), by the server's clock: the wall clock of this
    /// machine, as the server runs on it too.
    #[allow(dead_code)]
    pub fn grants(&self, name: &str) -> Vec<SystemTime> {
        let mut times: Vec<SystemTime> = ["Lock response", "TryLock response"]
            .iter()
            .flat_map(|msg| self.lines(msg, name))
            .filter(|line| line.contains("\"locked\":true"))
            .map(|line| logged_at(&line))
            .collect();
        times.sort();
        times
    }

    /// How many `msg` lines name `name`.
    #[allow(dead_code)]
    pub fn count(&self, msg: &str, name: &str) -> usize {
        self.lines(msg, name).len()
    }

    /// Waits (bounded) until at least `n` `msg` lines name `name`. The
    /// server writes a request's line as it starts handling it.
    #[allow(dead_code)]
    pub async fn wait_for(&self, msg: &str, name: &str, n: usize) {
        let deadline = Instant::now() + APPEAR_WITHIN;
        while self.count(msg, name) < n {
            assert!(
                Instant::now() < deadline,
                "the LDLM server did not log {n} {msg:?} for {name:?}"
            );
            // A file has no change notification: re-read it shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `"time"` of a log line (RFC 3339 in UTC, as Go's slog writes it).
#[allow(dead_code)]
fn logged_at(line: &str) -> SystemTime {
    let start = line.find("\"time\":\"").expect("a log line has a time") + 8;
    let text = &line[start..start + line[start..].find('"').unwrap()];
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let fraction = text[19..].trim_end_matches('Z').trim_start_matches('.');
    let nanos: u64 = format!("{fraction:0<9}")[..9].parse().unwrap_or(0);
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(seconds).unwrap())
        + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_slog_times() {
        let at = super::logged_at(r#"{"time":"2026-12-01T20:11:47.233623403Z","level":"INFO"}"#);
        let since = at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(since.as_secs(), 1_796_155_907);
        assert_eq!(since.subsec_nanos(), 233_623_403);
    }
}

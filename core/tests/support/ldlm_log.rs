//! The LDLM test server's log (`POLYLOCK_TEST_LDLM_LOG`, written at info
//! level by tests/servers/ldlm.sh): one JSON line per request and reply,
//! naming the lock. Tests count calls in it, and wait (bounded) for a call
//! to have reached the server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound for waiting on a line to appear.
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

    /// How many `msg` lines name `name`.
    pub fn count(&self, msg: &str, name: &str) -> usize {
        self.lines(msg, name).len()
    }

    /// Waits (bounded) until at least `n` `msg` lines name `name`. The
    /// server writes a request's line as it starts handling it.
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

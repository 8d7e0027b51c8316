//! A lock holder in another process, so a test can `kill -9`, `SIGSTOP`
//! and `SIGCONT` it: the test binary re-runs itself with `--exact
//! child_holder` and [`CHILD_ENV`] set to `URL NAME TTL_MS`. The child's
//! side of the protocol is the test binary's `child_holder` test: it takes
//! the lock, prints `fault-child: held TOKEN` (`none` on a backend without
//! fencing tokens), then answers each `state` line on its stdin with
//! `fault-child: state held|lost TOKEN`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// The environment variable that puts the test binary in child mode.
pub const CHILD_ENV: &str = "POLYLOCK_FAULT_CHILD";

/// How long the parent waits for any answer of the child.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// The parent's handle on a child holder; kills it when dropped.
pub struct ChildHolder {
    child: Child,
    stdin: ChildStdin,
    /// The child's protocol lines, without their prefix.
    lines: Receiver<String>,
}

impl ChildHolder {
    /// Starts a child that takes `name` on `url` with this TTL.
    pub fn spawn(url: &str, name: &str, ttl: Duration) -> ChildHolder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_holder", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{url} {name} {}", ttl.as_millis()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                // libtest may have written "test child_holder ... " first.
                if let Some((_, rest)) = line.split_once("fault-child: ") {
                    if sender.send(rest.trim().to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        ChildHolder {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for the child's grant; its fencing token, where the backend
    /// gives one.
    pub fn held(&mut self) -> Option<u64> {
        let line = self.line();
        let token = line
            .strip_prefix("held ")
            .expect("the child reports its grant");
        token.parse().ok()
    }

    /// Asks the child whether it holds the lock: true for "held".
    pub fn says_held(&mut self) -> bool {
        writeln!(self.stdin, "state").unwrap();
        self.line().starts_with("state held")
    }

    /// Sends a signal (`"-KILL"`, `"-STOP"`, `"-CONT"`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// The next protocol line; fails the test if the child ends or stays
    /// silent for [`ANSWER_WITHIN`].
    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(ANSWER_WITHIN)
            .expect("the child holder answers")
    }
}

impl Drop for ChildHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Every backend call runs in a `polylock.backend` span naming the
//! operation and the lock, whatever the backend.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polylock::blocking::Client;
use polylock::LockOptions;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[test]
fn backend_calls_run_in_named_spans() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    // polylock's calls run on its own runtime threads: a global subscriber.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let client = Client::connect("memory://tracing").unwrap();
    let lock = client
        .lock(
            "traced/lock",
            LockOptions::mutex().ttl(Duration::from_secs(5)),
        )
        .unwrap();
    let guard = lock.try_acquire().unwrap().expect("free");
    guard.release().unwrap();
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for op in ["try_acquire", "release"] {
        assert!(
            text.lines().any(|line| line.contains("polylock.backend")
                && line.contains(op)
                && line.contains("traced/lock")
                && line.contains("memory")),
            "no span for {op}:\n{text}"
        );
    }
}

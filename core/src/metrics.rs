//! A ready-made [`Observer`] that keeps counters and histograms of what a
//! client's locks do — acquire latency, wait time, hold time, renewals,
//! losses — and renders them in the Prometheus text format.
//!
//! ```no_run
//! # async fn demo() -> polylock::Result<()> {
//! use std::sync::Arc;
//! use polylock::{metrics::Metrics, Client, ClientOptions};
//!
//! let metrics = Arc::new(Metrics::new());
//! let client = Client::from_options(ClientOptions::new("memory://").observer(metrics.clone())).await?;
//! // … use the client; then serve this on /metrics:
//! let text = metrics.render_prometheus();
//! # let _ = (client, text); Ok(()) }
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{Event, Observer};

/// Upper bounds (seconds) of the histogram buckets, `+Inf` implied.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];

/// A histogram of durations over [`BUCKETS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), plus one for `+Inf`.
    pub counts: Vec<u64>,
    /// The sum of observations, in seconds.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// What [`Metrics::snapshot`] reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Leases granted.
    pub acquisitions: u64,
    /// Leases released by their holders.
    pub releases: u64,
    /// Renewals that proved a lease still held.
    pub renewals: u64,
    /// Leases lost.
    pub losses: u64,
    /// Acquire calls that found the lock busy and waited.
    pub waits: u64,
    /// Acquire calls that waited and gave up (timeout, cancel).
    pub waits_abandoned: u64,
    /// How long acquire calls that got a lease took.
    pub acquire_latency: Histogram,
    /// How long acquire calls waited for a busy lock (granted or not).
    pub wait_time: Histogram,
    /// How long leases were held until released or lost.
    pub hold_time: Histogram,
}

/// Counters and histograms of a client's lock activity; register it with
/// [`crate::ClientOptions::observer`].
#[derive(Debug, Default)]
pub struct Metrics {
    acquisitions: AtomicU64,
    releases: AtomicU64,
    renewals: AtomicU64,
    losses: AtomicU64,
    waits: AtomicU64,
    waits_abandoned: AtomicU64,
    histograms: Mutex<[Histogram; 3]>,
}

const ACQUIRE: usize = 0;
const WAIT: usize = 1;
const HOLD: usize = 2;

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Metrics::default()
    }

    fn observe(&self, which: usize, value: Duration) {
        self.histograms.lock().unwrap_or_else(|p| p.into_inner())[which].observe(value);
    }

    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let [acquire_latency, wait_time, hold_time] = self
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        MetricsSnapshot {
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            releases: self.releases.load(Ordering::Relaxed),
            renewals: self.renewals.load(Ordering::Relaxed),
            losses: self.losses.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            waits_abandoned: self.waits_abandoned.load(Ordering::Relaxed),
            acquire_latency,
            wait_time,
            hold_time,
        }
    }

    /// The metrics in the Prometheus text exposition format (version
    /// 0.0.4), every name prefixed `polylock_`.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let counters = [
            ("acquisitions_total", "Leases granted.", s.acquisitions),
            (
                "releases_total",
                "Leases released by their holders.",
                s.releases,
            ),
            (
                "renewals_total",
                "Renewals that proved a lease held.",
                s.renewals,
            ),
            ("losses_total", "Leases lost.", s.losses),
            (
                "waits_total",
                "Acquire calls that waited for a busy lock.",
                s.waits,
            ),
            (
                "waits_abandoned_total",
                "Waits that ended without the lock.",
                s.waits_abandoned,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP polylock_{name} {help}");
            let _ = writeln!(out, "# TYPE polylock_{name} counter");
            let _ = writeln!(out, "polylock_{name} {value}");
        }
        let histograms = [
            (
                "acquire_seconds",
                "Acquire calls that got a lease, start to grant.",
                &s.acquire_latency,
            ),
            (
                "wait_seconds",
                "Time acquire calls spent waiting for a busy lock.",
                &s.wait_time,
            ),
            (
                "hold_seconds",
                "Time leases were held until released or lost.",
                &s.hold_time,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP polylock_{name} {help}");
            let _ = writeln!(out, "# TYPE polylock_{name} histogram");
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
                cumulative += count;
                let _ = writeln!(out, "polylock_{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "polylock_{name}_bucket{{le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "polylock_{name}_sum {}", histogram.sum);
            let _ = writeln!(out, "polylock_{name}_count {}", histogram.count);
        }
        out
    }
}

impl Observer for Metrics {
    fn on_event(&self, event: &Event) {
        let bump = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::Acquired { waited, .. } => {
                bump(&self.acquisitions);
                self.observe(ACQUIRE, *waited);
            }
            Event::Released { held, .. } => {
                bump(&self.releases);
                self.observe(HOLD, *held);
            }
            Event::Renewed { .. } => {
                bump(&self.renewals);
            }
            Event::Lost { held, .. } => {
                bump(&self.losses);
                self.observe(HOLD, *held);
            }
            Event::WaitStarted { .. } => {
                bump(&self.waits);
            }
            Event::WaitEnded {
                acquired, waited, ..
            } => {
                if !acquired {
                    bump(&self.waits_abandoned);
                }
                self.observe(WAIT, *waited);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_and_render_cumulatively() {
        let metrics = Metrics::new();
        for ms in [0, 3, 3, 5_000_000] {
            metrics.on_event(&Event::Acquired {
                name: "a".into(),
                fencing_token: None,
                waited: Duration::from_millis(ms),
            });
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.acquisitions, 4);
        assert_eq!(snapshot.acquire_latency.count, 4);
        assert_eq!(snapshot.acquire_latency.counts[0], 1); // ≤ 0.5 ms
        assert_eq!(snapshot.acquire_latency.counts[3], 2); // ≤ 5 ms
        assert_eq!(snapshot.acquire_latency.counts[BUCKETS.len()], 1); // +Inf
        let text = metrics.render_prometheus();
        assert!(text.contains("polylock_acquisitions_total 4\n"), "{text}");
        assert!(
            text.contains("polylock_acquire_seconds_bucket{le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("polylock_acquire_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("polylock_acquire_seconds_count 4\n"),
            "{text}"
        );
    }
}

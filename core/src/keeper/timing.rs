//! When the keeper renews a lease, retries a failed renewal, and gives a
//! lease up: all from a lease's TTL and the client's fractions.

use std::time::Duration;

use tokio::time::Instant;

/// Renewal timing for one client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub renew_fraction: f64,
    pub safety_fraction: f64,
}

impl Timing {
    /// When a lease renewed (or granted) at `sent` for `ttl` stops being proven.
    pub(crate) fn deadline(&self, sent: Instant, ttl: Duration) -> Instant {
        sent + ttl.mul_f64(1.0 - self.safety_fraction)
    }

    /// How long after a renewal was sent the next one is due.
    pub(super) fn interval(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(self.renew_fraction)
    }

    /// When a lease with this deadline should be renewed: as early before
    /// the deadline as a fresh lease would be (`renew_fraction` after its grant).
    pub(crate) fn renew_at(&self, deadline: Instant, ttl: Duration) -> Instant {
        deadline - ttl.mul_f64(1.0 - self.renew_fraction - self.safety_fraction)
    }

    /// How long after a failed renewal the next attempt goes out: sooner
    /// than the interval.
    pub(super) fn retry_delay(&self, ttl: Duration) -> Duration {
        (self.interval(ttl) / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}

//! Retry pacing and cheap randomness shared by the backends.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random number from the standard library's randomly seeded hasher:
/// enough to spread retries and choices apart, not for cryptography.
pub(crate) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A short, random pause after losing a race (check-and-set, unique
/// insert), growing with `attempt` (up to ~50 ms), so contenders that woke
/// together retry apart.
pub(crate) async fn race_backoff(attempt: u32) {
    let ceiling_ms = 2u64.saturating_pow(attempt.min(6)).clamp(2, 50);
    let micros = random_u64() % (ceiling_ms * 1000);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

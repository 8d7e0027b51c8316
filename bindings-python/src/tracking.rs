//! Counting live native clients, for tests that check nothing keeps a
//! client alive (`polylock._native._track_clients(True)`, then
//! `_live_clients()`).
//!
//! A tracked client carries an observer whose drop is counted: it goes
//! with the native client itself (its options, its keeper), not with the
//! Python object. Off by default: an observer makes every acquisition and
//! release build an event.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use polylock::{ClientOptions, Event, Observer};
use pyo3::prelude::*;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Lives exactly as long as the native client that holds it.
struct Tracker;

impl Observer for Tracker {
    fn on_event(&self, _event: &Event) {}
}

impl Drop for Tracker {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `options`, with a tracker when tracking is on.
pub(crate) fn track(options: ClientOptions) -> ClientOptions {
    if !TRACKING.load(Ordering::SeqCst) {
        return options;
    }
    LIVE.fetch_add(1, Ordering::SeqCst);
    options.observer(Arc::new(Tracker))
}

/// Tracks the clients created from now on (or stops, for new ones).
#[pyfunction]
pub(crate) fn _track_clients(enabled: bool) {
    TRACKING.store(enabled, Ordering::SeqCst);
}

/// How many tracked native clients are alive (made, not yet freed).
#[pyfunction]
pub(crate) fn _live_clients() -> usize {
    LIVE.load(Ordering::SeqCst)
}

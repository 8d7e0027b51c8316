//! The fault suite's judge: a fenced store, as a careful resource would
//! keep one, and a tally of what a run checked.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Accepts a write only if its fencing token is at least the highest it
/// accepted: a new holder's higher token raises the bar, and a holder that
/// lost its lease (a lower token) is rejected.
#[derive(Default)]
pub struct FencedStore {
    state: Mutex<StoreState>,
}

/// What a store saw.
#[derive(Default, Debug, Clone)]
pub struct StoreState {
    pub highest: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Every token that tried to write (one per grant).
    pub grants: BTreeSet<u64>,
}

impl FencedStore {
    /// A write by the holder of `token`; false when the token is stale.
    pub fn write(&self, token: u64) -> bool {
        let mut state = self.state.lock().unwrap();
        state.grants.insert(token);
        if token < state.highest {
            state.rejected += 1;
            return false;
        }
        state.highest = token;
        state.accepted += 1;
        true
    }

    /// A copy of the counters.
    pub fn state(&self) -> StoreState {
        self.state.lock().unwrap().clone()
    }
}

/// What one backend's run counted: faults injected, checks made, and the
/// checks that failed (violations).
#[derive(Default)]
pub struct Tally {
    /// Distinct tokens written through the fenced stores.
    pub grants: u64,
    /// Writes the stores accepted.
    pub accepted: u64,
    /// Stale writes the stores rejected.
    pub rejected: u64,
    pub faults: u32,
    pub checks: u32,
    pub violations: Vec<String>,
    /// Notes that are not violations (which way a survivable fault went).
    pub outcomes: Vec<String>,
}

impl Tally {
    /// Counts a check; records `what` as a violation when `ok` is false.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        self.checks += 1;
        if !ok {
            self.violations.push(what.into());
        }
    }
}

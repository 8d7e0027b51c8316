//! What this process knows of each name's slots: the newest generation it
//! saw exist, per slot (and the newest ticket), learnt from its own
//! surveys, inserts and releases and from other clients' events, and which
//! slots the newest releases freed. A survey starts reading there, so a
//! name in steady use costs one read, and an acquisition right after a
//! release seen here inserts the next generation without one. It is a hint
//! only: every read steps forward from it, and exclusion rests on the
//! inserts alone. Bounded: past [`KNOWN_NAMES`] names the least recently
//! used are forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Names remembered at most.
pub(crate) const KNOWN_NAMES: usize = 32_768;

/// Which name: the lock collection and the lock's name.
pub(crate) type NameKey = (String, String);

/// A slot freed by a release: its release marker's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freed {
    pub slot: i32,
    /// The release marker: the next take inserts `marker + 1`.
    pub marker: i64,
    /// The limit of the lock the released lease held.
    pub limit: u32,
    /// When the release was written, in server milliseconds.
    pub at_ms: i64,
}

#[derive(Default)]
struct Slots {
    newest: HashMap<i32, i64>,
    /// The newest release seen per slot.
    freed: HashMap<i32, Freed>,
    used: u64,
}

/// The process's knowledge of names (one per events log, see
/// [`super::events::EventLog`]).
#[derive(Default)]
pub(crate) struct Known {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    names: HashMap<NameKey, Slots>,
    clock: u64,
}

impl Known {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest generation of `slot` of `key` known to exist.
    pub(crate) fn newest(&self, key: &NameKey, slot: i32) -> Option<i64> {
        let mut state = self.state();
        state.clock += 1;
        let clock = state.clock;
        let slots = state.names.get_mut(key)?;
        slots.used = clock;
        slots.newest.get(&slot).copied()
    }

    /// Generation `gen` of `slot` of `key` exists.
    pub(crate) fn saw(&self, key: &NameKey, slot: i32, gen: i64) {
        self.with_slots(key, |slots| {
            let newest = slots.newest.entry(slot).or_insert(gen);
            *newest = (*newest).max(gen);
        });
    }

    /// A release of `key` wrote `freed`'s marker.
    pub(crate) fn released(&self, key: &NameKey, freed: Freed) {
        self.with_slots(key, |slots| {
            let newest = slots.newest.entry(freed.slot).or_insert(freed.marker);
            *newest = (*newest).max(freed.marker);
            let last = slots.freed.entry(freed.slot).or_insert(freed);
            if last.marker <= freed.marker {
                *last = freed;
            }
        });
    }

    /// A slot of `key` a release freed with `limit`, whose release marker
    /// is still the newest generation of the slot known here.
    pub(crate) fn free_slot(&self, key: &NameKey, limit: u32) -> Option<Freed> {
        let state = self.state();
        let slots = state.names.get(key)?;
        slots
            .freed
            .values()
            .filter(|f| f.limit == limit && slots.newest.get(&f.slot) == Some(&f.marker))
            .max_by_key(|f| f.at_ms)
            .copied()
    }

    fn with_slots(&self, key: &NameKey, change: impl FnOnce(&mut Slots)) {
        let mut state = self.state();
        state.clock += 1;
        let clock = state.clock;
        if !state.names.contains_key(key) && state.names.len() >= KNOWN_NAMES {
            forget_oldest(&mut state.names);
        }
        let slots = state.names.entry(key.clone()).or_default();
        slots.used = clock;
        change(slots);
    }

    /// How many names are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state().names.len()
    }
}

/// Forgets the least recently used eighth of `names`.
fn forget_oldest(names: &mut HashMap<NameKey, Slots>) {
    let mut used: Vec<u64> = names.values().map(|s| s.used).collect();
    let cut = used.len() / 8;
    let (_, threshold, _) = used.select_nth_unstable(cut);
    let threshold = *threshold;
    names.retain(|_, s| s.used > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> NameKey {
        ("locks".into(), format!("n{n}"))
    }

    #[test]
    fn knowledge_only_moves_forward() {
        let known = Known::default();
        known.saw(&key(1), 0, 5);
        known.saw(&key(1), 0, 3);
        assert_eq!(known.newest(&key(1), 0), Some(5));
        assert_eq!(known.newest(&key(1), 1), None);
        assert_eq!(known.newest(&key(2), 0), None);
    }

    #[test]
    fn a_freed_slot_is_offered_until_a_newer_generation_is_seen() {
        let known = Known::default();
        let freed = Freed {
            slot: 0,
            marker: 4,
            limit: 1,
            at_ms: 10,
        };
        known.released(&key(1), freed);
        assert_eq!(known.newest(&key(1), 0), Some(4));
        assert_eq!(known.free_slot(&key(1), 1), Some(freed));
        // Another limit is not offered it.
        assert_eq!(known.free_slot(&key(1), 2), None);
        // Someone took generation 5.
        known.saw(&key(1), 0, 5);
        assert_eq!(known.free_slot(&key(1), 1), None);
    }

    #[test]
    fn knowledge_stays_bounded_and_keeps_recent_names() {
        let known = Known::default();
        for n in 0..KNOWN_NAMES + 10 {
            known.saw(&key(n), 0, 1);
            // Name 0 stays in use.
            let _ = known.newest(&key(0), 0);
        }
        assert!(known.len() <= KNOWN_NAMES);
        assert_eq!(known.newest(&key(0), 0), Some(1));
        assert_eq!(known.newest(&key(KNOWN_NAMES + 9), 0), Some(1));
    }
}

//! A name's generations as data: the documents' ids, one generation, what a
//! survey of a name's slots found, and the plan it leads to. No I/O here;
//! [`super::ledger`] reads and writes the documents.

use std::collections::BTreeMap;

use mongodb::bson::Document;

/// The pseudo-slot of a name's ticket ledger.
pub(crate) const TICKET_SLOT: i32 = -1;

/// The largest semaphore limit this backend serves: every survey reads
/// each slot, so a limit is a per-acquisition cost.
pub(crate) const MAX_LIMIT: u32 = 1024;

/// How long past its expiry a holder is still treated as live by others:
/// covers the error of the clock-offset estimates.
pub(crate) const EXPIRY_ALLOWANCE_MS: i64 = 250;

/// The `_id` of a slot's head hint.
pub(crate) fn head_id(name: &str, slot: i32) -> String {
    format!("{name}/{slot}/head")
}

/// The `_id` of generation `gen` of `slot` of `name`.
pub(crate) fn doc_id(name: &str, slot: i32, gen: i64) -> String {
    format!("{name}/{slot}/{gen:020}")
}

/// One generation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    pub id: String,
    pub slot: i32,
    pub gen: i64,
    pub limit: u32,
    pub expires_at: i64,
    pub released: bool,
    pub token: i64,
    /// A holder's renewal unit, whose session ([`super::sessions`]) keeps
    /// it live past `expires_at` (empty for markers, tickets and abandoned
    /// leases).
    pub unit: String,
}

impl Generation {
    pub(crate) fn from_doc(doc: &Document) -> Option<Self> {
        Some(Generation {
            id: doc.get_str("_id").ok()?.to_string(),
            slot: doc.get_i32("slot").ok()?,
            gen: doc.get_i64("gen").ok()?,
            limit: u32::try_from(doc.get_i32("limit").unwrap_or(1)).unwrap_or(1),
            expires_at: doc.get_i64("expires_at").unwrap_or(0),
            released: doc.get_bool("released").unwrap_or(false),
            token: doc.get_i64("token").unwrap_or(0),
            unit: doc.get_str("unit").unwrap_or_default().to_string(),
        })
    }

    /// The release marker that frees this generation's slot: the next
    /// generation, released, carrying this one's limit and token.
    /// A document whose `_id` does not end in the 20 digits of
    /// [`doc_id`] (not one of ours) keeps whatever precedes its last 20
    /// bytes, cut back to a character boundary; a `gen` at `i64::MAX` stays.
    pub(crate) fn marker(&self) -> Generation {
        let mut name_end = self.id.len().saturating_sub(20);
        while !self.id.is_char_boundary(name_end) {
            name_end -= 1;
        }
        let name_and_slot = &self.id[..name_end];
        let gen = self.gen.saturating_add(1);
        Generation {
            id: format!("{name_and_slot}{gen:020}"),
            slot: self.slot,
            gen,
            limit: self.limit,
            expires_at: 0,
            released: true,
            token: self.token,
            unit: String::new(),
        }
    }

    /// Held by someone at server time `now`.
    pub(crate) fn is_live(&self, now: i64) -> bool {
        !self.released && self.expires_at.saturating_add(EXPIRY_ALLOWANCE_MS) > now
    }
}

/// What one read of a name's documents says.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// The newest generation of each slot (slot ≥ 0).
    pub newest: BTreeMap<i32, Generation>,
    /// The newest ticket drawn (0 if none).
    pub newest_ticket: i64,
    /// The limit of the semaphore that drew the newest ticket (0 if none).
    pub ticket_limit: u32,
}

/// What to do after a survey.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The lock is held with another limit.
    Mismatch { existing: u32 },
    /// Every slot is held; the first may free up by expiry at `wake_at`.
    Busy { wake_at: Option<i64> },
    /// Insert generation `gen` of `slot`; `replaces` is the expired holder
    /// being taken over, if any.
    Take {
        slot: i32,
        gen: i64,
        replaces: Option<Generation>,
    },
}

impl Survey {
    pub(crate) fn from_generations(generations: impl IntoIterator<Item = Generation>) -> Self {
        let mut survey = Survey::default();
        for generation in generations {
            if generation.slot == TICKET_SLOT {
                if generation.gen > survey.newest_ticket {
                    survey.newest_ticket = generation.gen;
                    survey.ticket_limit = generation.limit;
                }
                continue;
            }
            match survey.newest.get(&generation.slot) {
                Some(known) if known.gen >= generation.gen => {}
                _ => {
                    survey.newest.insert(generation.slot, generation);
                }
            }
        }
        survey
    }

    /// The limit of a live holder whose limit is not `limit`, if any.
    pub(crate) fn other_limit(&self, limit: u32, now: i64) -> Option<u32> {
        self.newest
            .values()
            .find(|g| g.is_live(now) && g.limit != limit)
            .map(|g| g.limit)
    }

    /// Chooses a free slot of `limit` (`pick` picks among several), or says
    /// why there is none, at server time `now`.
    pub(crate) fn plan(&self, limit: u32, now: i64, pick: impl FnOnce(usize) -> usize) -> Plan {
        if let Some(existing) = self.other_limit(limit, now) {
            return Plan::Mismatch { existing };
        }
        let live: Vec<&Generation> = self.newest.values().filter(|g| g.is_live(now)).collect();
        let free: Vec<i32> = (0..limit as i32)
            .filter(|slot| !self.newest.get(slot).is_some_and(|g| g.is_live(now)))
            .collect();
        if free.is_empty() {
            return Plan::Busy {
                wake_at: live
                    .iter()
                    .map(|g| g.expires_at.saturating_add(EXPIRY_ALLOWANCE_MS))
                    .min(),
            };
        }
        let slot = free[pick(free.len()) % free.len()];
        let previous = self.newest.get(&slot);
        Plan::Take {
            slot,
            gen: previous.map_or(1, |g| g.gen.saturating_add(1)),
            replaces: previous.filter(|g| !g.released).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(slot: i32, gen: i64, limit: u32, expires_at: i64, released: bool) -> Generation {
        Generation {
            id: doc_id("n", slot, gen),
            slot,
            gen,
            limit,
            expires_at,
            released,
            token: gen,
            unit: String::new(),
        }
    }

    #[test]
    fn ids_sort_by_generation() {
        assert!(doc_id("a", 0, 9) < doc_id("a", 0, 10));
        assert_eq!(doc_id("a/b", 2, 7), "a/b/2/00000000000000000007");
    }

    #[test]
    fn free_lock_takes_generation_one() {
        let plan = Survey::default().plan(1, 1000, |_| 0);
        assert_eq!(
            plan,
            Plan::Take {
                slot: 0,
                gen: 1,
                replaces: None
            }
        );
    }

    #[test]
    fn newest_generation_decides() {
        let survey = Survey::from_generations([
            generation(0, 3, 1, 5000, false),
            generation(0, 2, 1, 9000, false),
            generation(TICKET_SLOT, 4, 0, 0, true),
        ]);
        assert_eq!(survey.newest[&0].gen, 3);
        assert_eq!(survey.newest_ticket, 4);
        assert_eq!(
            survey.plan(1, 1000, |_| 0),
            Plan::Busy {
                wake_at: Some(5000 + EXPIRY_ALLOWANCE_MS)
            }
        );
    }

    #[test]
    fn released_and_expired_slots_are_free() {
        let released = Survey::from_generations([generation(0, 3, 1, 5000, true)]);
        assert_eq!(
            released.plan(1, 1000, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 4,
                replaces: None
            }
        );
        let expired = Survey::from_generations([generation(0, 3, 1, 5000, false)]);
        // Still live within the allowance, free after it.
        assert!(matches!(expired.plan(1, 5000, |_| 0), Plan::Busy { .. }));
        let later = 5000 + EXPIRY_ALLOWANCE_MS;
        assert_eq!(
            expired.plan(1, later, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 4,
                replaces: Some(generation(0, 3, 1, 5000, false))
            }
        );
    }

    #[test]
    fn the_newest_ticket_carries_its_limit() {
        let survey = Survey::from_generations([
            generation(TICKET_SLOT, 7, 5, 0, true),
            generation(TICKET_SLOT, 6, 2, 0, true),
        ]);
        assert_eq!((survey.newest_ticket, survey.ticket_limit), (7, 5));
        // Tickets are never live holders.
        assert_eq!(survey.other_limit(1, 0), None);
    }

    #[test]
    fn semaphores_pick_among_free_slots_and_refuse_other_limits() {
        let survey = Survey::from_generations([generation(1, 5, 3, 9000, false)]);
        assert_eq!(
            survey.plan(3, 1000, |n| n - 1),
            Plan::Take {
                slot: 2,
                gen: 1,
                replaces: None
            }
        );
        assert_eq!(survey.plan(2, 1000, |_| 0), Plan::Mismatch { existing: 3 });
        // An idle lock takes any limit.
        assert_eq!(
            survey.plan(2, 99_999, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 1,
                replaces: None
            }
        );
    }

    /// Documents are read from the server, so any `_id` and any numbers:
    /// the marker of an `_id` cut inside a character, or of the last
    /// generation, and expiries near the end of time do not panic (found
    /// by fuzzing).
    #[test]
    fn odd_documents_do_not_panic() {
        let mut odd = generation(0, i64::MAX, 1, i64::MAX, false);
        odd.id = format!("{}a", "é".repeat(11));
        let marker = odd.marker();
        assert_eq!(marker.gen, i64::MAX);
        assert!(
            marker.id.ends_with(&format!("{:020}", i64::MAX)),
            "{}",
            marker.id
        );
        assert!(odd.is_live(i64::MAX - 1));
        let survey = Survey::from_generations([odd]);
        assert_eq!(
            survey.plan(1, 0, |_| 0),
            Plan::Busy {
                wake_at: Some(i64::MAX)
            }
        );
        let survey = Survey::from_generations([generation(0, i64::MAX, 1, 0, true)]);
        assert!(matches!(
            survey.plan(1, 0, |_| 0),
            Plan::Take { gen: i64::MAX, .. }
        ));
    }
}

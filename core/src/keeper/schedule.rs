//! The keeper's book: every kept lease, indexed by when it next needs the
//! keeper, so that a wake-up does work only for what is due.
//!
//! The timeline is a `BTreeMap` from (time, key) to what is due then. A lease
//! without a renewal unit has one entry: at its renewal (or retry) time, or
//! at its deadline if that comes first; while its renewal is in flight, at
//! its deadline. A shared renewal unit has one entry for all its leases: at
//! its next renewal or its earliest lease deadline, whichever comes first
//! (while in flight, the deadline). Costs: a wake-up O(due · log n) (a due
//! shared unit is looked at whole, as its renewal is), a grant or a
//! renewal's completion O(log n) (a shared unit's completion also looks at
//! its leases, as the renewal did), a release O(log n).
//!
//! Times are nanoseconds since the book was made, which keeps entries small.
//! Keys are lease ids (per client, never reused) for single leases and ids
//! from [`FIRST_UNIT`] up for shared units, so no two entries collide.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::timing::Timing;
use crate::lease::LeaseCore;

/// How long the keeper sleeps when it has nothing to do.
const IDLE: Duration = Duration::from_secs(3600);

/// Shared units' keys start here, above any lease id.
const FIRST_UNIT: u64 = 1 << 63;

/// What is due at a timeline entry.
enum Due {
    /// A lease renewed on its own: due at its renewal (or retry) time, or
    /// at its deadline if that comes first.
    Renew(Arc<LeaseCore>),
    /// Such a lease while its renewal is in flight: due at its deadline.
    Renewing(Arc<LeaseCore>),
    /// A shared renewal unit (the key is its id).
    Unit,
}

/// Leases renewed together by one backend call (a Consul session).
struct Unit {
    name: Arc<str>,
    leases: HashMap<u64, Arc<LeaseCore>>,
    next_renew: Instant,
    /// No lease of the unit has an earlier deadline. A lower bound: a lease
    /// leaving or renewed on the caller's request leaves it early, and the
    /// next look at the unit corrects it.
    earliest: Instant,
    /// While a renewal is in flight: the earliest renewal time of the leases
    /// that joined after it was sent (it does not renew them).
    joined: Option<Instant>,
    in_flight: bool,
    /// Its timeline time; `None` only while in flight with no lease left.
    at: Option<u64>,
}

impl Unit {
    /// When the keeper must look at the unit next: its renewal, or the
    /// earliest deadline (also while a renewal is in flight, which may hang).
    fn next_event(&self) -> Instant {
        if self.in_flight {
            self.earliest
        } else {
            self.next_renew.min(self.earliest)
        }
    }
}

/// A renewal the keeper starts: one lease, or a shared unit's leases.
pub(super) enum Renewal {
    Lease(Arc<LeaseCore>),
    Unit {
        id: u64,
        leases: Vec<Arc<LeaseCore>>,
    },
}

impl Renewal {
    /// The leases one backend call renews.
    pub(super) fn leases(&self) -> &[Arc<LeaseCore>] {
        match self {
            Renewal::Lease(lease) => std::slice::from_ref(lease),
            Renewal::Unit { leases, .. } => leases,
        }
    }
}

/// What one wake-up found.
#[derive(Default)]
pub(super) struct Tick {
    /// Renewals to start (each on a task of its own).
    pub renewals: Vec<Renewal>,
    /// Leases whose deadline passed unproven: to be declared lost.
    pub overdue: Vec<Arc<LeaseCore>>,
    /// Timeline entries whose time had come.
    pub due: u64,
    /// Leases and units looked at.
    pub examined: u64,
}

/// What the keeper's wake-ups cost, summed (for tests of that cost).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Wake-ups of the keeper that looked at the timeline.
    pub wakeups: u64,
    /// Timeline entries whose time had come, over all wake-ups.
    pub due: u64,
    /// Leases and units looked at, over all wake-ups.
    pub examined: u64,
    /// The most leases and units one wake-up looked at.
    pub most_examined: u64,
}

/// Every kept lease, by when it next needs the keeper.
pub(super) struct Book {
    epoch: Instant,
    timeline: BTreeMap<(u64, u64), Due>,
    units: HashMap<u64, Unit>,
    unit_ids: HashMap<Arc<str>, u64>,
    next_unit: u64,
    /// When the keeper's task looks next (timeline time): a change due
    /// before it wakes the task.
    next_look: u64,
    pub(super) stats: Stats,
}

impl Book {
    pub(super) fn new() -> Self {
        Book {
            epoch: Instant::now(),
            timeline: BTreeMap::new(),
            units: HashMap::new(),
            unit_ids: HashMap::new(),
            next_unit: FIRST_UNIT,
            next_look: 0,
            stats: Stats::default(),
        }
    }

    fn time(&self, at: Instant) -> u64 {
        nanos_since(self.epoch, at)
    }

    fn instant(&self, time: u64) -> Instant {
        self.epoch + Duration::from_nanos(time)
    }

    /// Files `due` at `at`; true when that is before the keeper's next look.
    fn insert(&mut self, at: Instant, key: u64, due: Due) -> bool {
        let time = self.time(at);
        if let Due::Renew(lease) | Due::Renewing(lease) = &due {
            lease.slot.store(time, Ordering::Relaxed);
        } else if let Some(unit) = self.units.get_mut(&key) {
            unit.at = Some(time);
        }
        self.timeline.insert((time, key), due);
        time < self.next_look
    }

    /// Starts keeping `lease`; true when the keeper's task must look sooner.
    pub(super) fn add(&mut self, lease: &Arc<LeaseCore>, timing: &Timing) -> bool {
        let deadline = lease.deadline();
        let renew_at = timing.renew_at(deadline, lease.grant.ttl);
        let Some(name) = &lease.grant.renewal_unit else {
            return self.insert(renew_at.min(deadline), lease.id, Due::Renew(lease.clone()));
        };
        let id = match self.unit_ids.get(name.as_str()) {
            Some(id) => *id,
            None => {
                let id = self.next_unit;
                self.next_unit += 1;
                let name: Arc<str> = name.as_str().into();
                self.unit_ids.insert(name.clone(), id);
                let unit = Unit {
                    name,
                    leases: HashMap::new(),
                    next_renew: renew_at,
                    earliest: deadline,
                    joined: None,
                    in_flight: false,
                    at: None,
                };
                self.units.insert(id, unit);
                id
            }
        };
        let unit = self.units.get_mut(&id).expect("the unit was found or made");
        unit.leases.insert(lease.id, lease.clone());
        unit.earliest = unit.earliest.min(deadline);
        // A lease joining a unit must not wait past its own renewal time.
        if unit.in_flight {
            unit.joined = Some(unit.joined.map_or(renew_at, |j| j.min(renew_at)));
        } else {
            unit.next_renew = unit.next_renew.min(renew_at);
        }
        self.reschedule(id)
    }

    /// Moves unit `id`'s entry to its next event; true when that is before
    /// the keeper's next look.
    fn reschedule(&mut self, id: u64) -> bool {
        let epoch = self.epoch;
        let Some(unit) = self.units.get_mut(&id) else {
            return false;
        };
        let at = unit.next_event();
        let time = nanos_since(epoch, at);
        if unit.at == Some(time) {
            return false;
        }
        if let Some(old) = unit.at.take() {
            self.timeline.remove(&(old, id));
        }
        self.insert(at, id, Due::Unit)
    }

    /// Stops keeping `lease` (released, abandoned or lost).
    pub(super) fn remove(&mut self, lease: &LeaseCore) {
        let Some(name) = &lease.grant.renewal_unit else {
            let key = (lease.slot.load(Ordering::Relaxed), lease.id);
            if let Some(Due::Renew(kept) | Due::Renewing(kept)) = self.timeline.get(&key) {
                if std::ptr::eq(Arc::as_ptr(kept), lease) {
                    self.timeline.remove(&key);
                }
            }
            return;
        };
        let Some(&id) = self.unit_ids.get(name.as_str()) else {
            return;
        };
        let unit = self.units.get_mut(&id).expect("every unit id has its unit");
        unit.leases.remove(&lease.id);
        if unit.leases.is_empty() && !unit.in_flight {
            self.drop_unit(id);
        }
    }

    fn drop_unit(&mut self, id: u64) {
        if let Some(unit) = self.units.remove(&id) {
            self.unit_ids.remove(&unit.name);
            if let Some(at) = unit.at {
                self.timeline.remove(&(at, id));
            }
        }
    }

    /// Takes what is due at `now`: overdue leases (out of the book; the
    /// caller declares them lost) and renewals to start. Sets the keeper's
    /// next look, returned with the tick.
    pub(super) fn take_due(&mut self, now: Instant) -> (Tick, Instant) {
        let mut tick = Tick::default();
        let time = self.time(now);
        while let Some(entry) = self.timeline.first_entry() {
            if entry.key().0 > time {
                break;
            }
            let ((_, key), due) = entry.remove_entry();
            tick.due += 1;
            let (lease, in_flight) = match due {
                Due::Renew(lease) => (lease, false),
                Due::Renewing(lease) => (lease, true),
                Due::Unit => {
                    self.look_at_unit(key, now, &mut tick);
                    continue;
                }
            };
            tick.examined += 1;
            let deadline = lease.deadline();
            if deadline <= now {
                tick.overdue.push(lease);
                continue;
            }
            // Due for renewal (or its deadline moved past its entry: renewed
            // on the caller's request), or in flight with its deadline moved.
            self.insert(deadline, key, Due::Renewing(lease.clone()));
            if !in_flight {
                tick.renewals.push(Renewal::Lease(lease));
            }
        }
        let next = match self.timeline.first_key_value() {
            Some(((time, _), _)) => self.instant(*time),
            None => now + IDLE,
        };
        self.next_look = self.time(next);
        self.stats.wakeups += 1;
        self.stats.due += tick.due;
        self.stats.examined += tick.examined;
        self.stats.most_examined = self.stats.most_examined.max(tick.examined);
        (tick, next)
    }

    /// A due unit (its entry already taken): its overdue leases, its renewal.
    fn look_at_unit(&mut self, id: u64, now: Instant, tick: &mut Tick) {
        let Some(unit) = self.units.get_mut(&id) else {
            return;
        };
        unit.at = None;
        tick.examined += 1 + unit.leases.len() as u64;
        let mut earliest = None::<Instant>;
        unit.leases.retain(|_, lease| {
            let deadline = lease.deadline();
            if deadline <= now {
                tick.overdue.push(lease.clone());
                false
            } else {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
                true
            }
        });
        match earliest {
            Some(earliest) => {
                unit.earliest = earliest;
                if !unit.in_flight && unit.next_renew <= now {
                    unit.in_flight = true;
                    unit.joined = None;
                    tick.renewals.push(Renewal::Unit {
                        id,
                        leases: unit.leases.values().cloned().collect(),
                    });
                }
                let at = unit.next_event();
                self.insert(at, id, Due::Unit);
            }
            // Emptied: dropped now, or when its renewal in flight ends.
            None if !unit.in_flight => self.drop_unit(id),
            None => {}
        }
    }

    /// Files the next renewal after `renewal` (sent at `sent`) ended; true
    /// when that is before the keeper's next look.
    pub(super) fn finish(
        &mut self,
        renewal: Renewal,
        succeeded: bool,
        sent: Instant,
        now: Instant,
        timing: &Timing,
    ) -> bool {
        match renewal {
            Renewal::Lease(lease) => {
                let key = (lease.slot.load(Ordering::Relaxed), lease.id);
                match self.timeline.get(&key) {
                    Some(Due::Renewing(kept)) if Arc::ptr_eq(kept, &lease) => {}
                    // Released or lost meanwhile: nothing left to renew.
                    _ => return false,
                }
                self.timeline.remove(&key);
                let ttl = lease.grant.ttl;
                let next = if succeeded {
                    sent + timing.interval(ttl)
                } else {
                    now + timing.retry_delay(ttl)
                };
                let at = next.min(lease.deadline());
                self.insert(at, lease.id, Due::Renew(lease))
            }
            Renewal::Unit { id, .. } => {
                let Some(unit) = self.units.get_mut(&id) else {
                    return false;
                };
                unit.in_flight = false;
                let mut shortest = None::<Duration>;
                let mut earliest = None::<Instant>;
                for lease in unit.leases.values() {
                    let (ttl, deadline) = (lease.grant.ttl, lease.deadline());
                    shortest = Some(shortest.map_or(ttl, |s| s.min(ttl)));
                    earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
                }
                let (Some(shortest), Some(earliest)) = (shortest, earliest) else {
                    self.drop_unit(id);
                    return false;
                };
                let next = if succeeded {
                    sent + timing.interval(shortest)
                } else {
                    now + timing.retry_delay(shortest)
                };
                unit.next_renew = unit.joined.take().map_or(next, |j| j.min(next));
                unit.earliest = earliest;
                self.reschedule(id)
            }
        }
    }

    /// When the lease's (or its unit's) next timeline entry is, if it has one.
    #[cfg(test)]
    pub(super) fn next_event_of(&self, lease: &LeaseCore) -> Option<Instant> {
        let key = match &lease.grant.renewal_unit {
            None => (lease.slot.load(Ordering::Relaxed), lease.id),
            Some(name) => {
                let id = *self.unit_ids.get(name.as_str())?;
                if !self.units[&id].leases.contains_key(&lease.id) {
                    return None;
                }
                (self.units[&id].at?, id)
            }
        };
        self.timeline
            .contains_key(&key)
            .then(|| self.instant(key.0))
    }

    /// How many timeline entries there are.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.timeline.len()
    }
}

/// `at` as timeline time: nanoseconds since `epoch` (0 for earlier instants).
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

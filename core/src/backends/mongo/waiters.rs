//! This process's waiters on each MongoDB lock, in arrival order. A freed
//! slot (a release seen in the events log, or this process's own release,
//! told at once without a server read) gives a turn to one waiter only,
//! carrying which generation was freed, so the waiter inserts the next one
//! without surveying first; a waiter that loses that insert waits again
//! without a request. Only the first waiter also wakes at the holders'
//! expected expiry, to survey for a holder that died ([`Queue::recheck_at`]).
//! A name's queue exists only while it has waiters.
//!
//! A mutex waiter also says what it wants ([`Wanted`]): a holder in this
//! process that releases may then hand its lease straight over (one insert
//! of the next generation in the waiter's name, no release marker in
//! between; see [`super::handoff`]): the waiter is reserved for it and
//! gets the grant as its turn ([`Handed`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::known::{Freed, NameKey};
use crate::backend::{AcquireRequest, Grant};

/// What a waiter wants, for a holder here that hands its lease over: the
/// request, and the renewal unit of the waiter's client.
pub(crate) struct Wanted {
    pub request: AcquireRequest,
    pub unit: String,
}

/// A lease a holder in this process handed to a waiter.
pub(crate) struct Handed {
    pub grant: Grant,
    /// When the insert that took it was sent.
    pub sent: Instant,
    /// Releases the lease should nobody take it (the waiter left).
    orphaned: Option<Box<dyn FnOnce() + Send>>,
}

impl Handed {
    /// A handed lease; `orphaned` releases it if the waiter has gone.
    pub(crate) fn new(grant: Grant, sent: Instant, orphaned: Box<dyn FnOnce() + Send>) -> Self {
        Handed {
            grant,
            sent,
            orphaned: Some(orphaned),
        }
    }

    /// Nobody takes it: release it.
    pub(crate) fn orphan(mut self) {
        if let Some(release) = self.orphaned.take() {
            release();
        }
    }

    /// Taken by its waiter.
    pub(crate) fn taken(mut self) -> (Grant, Instant) {
        self.orphaned = None;
        (self.grant, self.sent)
    }
}

/// What woke a waiter.
pub(crate) enum Turn {
    /// A slot was freed: take it.
    Freed(Freed),
    /// A holder here handed its lease over.
    Handed(Handed),
    /// The first waiter's time to survey (a holder may have expired).
    Recheck,
    /// The call's deadline came.
    Deadline,
}

/// A turn given and not yet taken.
enum Given {
    Freed(Freed),
    /// A holder here is handing its lease to this waiter.
    Reserved,
    Handed(Handed),
}

struct Entry {
    id: u64,
    wake: Arc<Notify>,
    turn: Option<Given>,
    wanted: Option<Arc<Wanted>>,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// The newest marker a turn was given for, per slot (the same release
    /// is told twice: by this process at once, then by the events log).
    told: HashMap<i32, i64>,
    /// When the first waiter surveys next.
    recheck_at: Option<Instant>,
}

impl Queue {
    /// Moves the first waiter's recheck to `at` (no later than one already
    /// due sooner when `keep_sooner`), waking it to see the new time.
    fn recheck(&mut self, at: Option<Instant>, keep_sooner: bool) {
        self.recheck_at = match (self.recheck_at, at) {
            (Some(now), Some(at)) if keep_sooner => Some(now.min(at)),
            (_, at) => at,
        };
        if let Some(first) = self.entries.front() {
            first.wake.notify_one();
        }
    }

    /// Gives `freed` to the first waiter without a turn.
    fn give(&mut self, freed: Freed) -> bool {
        match self.entries.iter_mut().find(|e| e.turn.is_none()) {
            Some(entry) => {
                entry.turn = Some(Given::Freed(freed));
                entry.wake.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Every waiter of this process, by name.
#[derive(Default)]
pub(crate) struct Waiters {
    queues: Mutex<HashMap<NameKey, Queue>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Waiters {
    fn queues(&self) -> MutexGuard<'_, HashMap<NameKey, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a waiter for `key` at the back. It is queued before its first
    /// attempt, so no release in between goes unseen. Returns it and how
    /// many waiters were queued before it.
    pub(crate) fn join(&self, key: &NameKey) -> (Waiter<'_>, usize) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let mut queues = self.queues();
        let queue = queues.entry(key.clone()).or_default();
        let ahead = queue.entries.len();
        queue.entries.push_back(Entry {
            id,
            wake: wake.clone(),
            turn: None,
            wanted: None,
        });
        let waiter = Waiter {
            waiters: self,
            key: key.clone(),
            id,
            wake,
        };
        (waiter, ahead)
    }

    /// A release freed a slot of `key`: one waiter gets a turn (none when
    /// this release was told before or nobody waits). True if one did.
    pub(crate) fn freed(&self, key: &NameKey, freed: Freed) -> bool {
        let mut queues = self.queues();
        let Some(queue) = queues.get_mut(key) else {
            return false;
        };
        let told = queue.told.entry(freed.slot).or_insert(0);
        if *told >= freed.marker {
            return false;
        }
        *told = freed.marker;
        queue.give(freed)
    }

    /// Reserves the first waiter on `key` without a turn that wants a
    /// handed lease: its id and what it wants.
    pub(crate) fn reserve(&self, key: &NameKey) -> Option<(u64, Arc<Wanted>)> {
        let mut queues = self.queues();
        let entry = queues
            .get_mut(key)?
            .entries
            .iter_mut()
            .find(|e| e.turn.is_none() && e.wanted.is_some())?;
        entry.turn = Some(Given::Reserved);
        Some((entry.id, entry.wanted.clone()?))
    }

    /// Gives reserved waiter `id` its lease; the lease back if it has gone.
    pub(crate) fn hand(&self, key: &NameKey, id: u64, handed: Handed) -> Option<Handed> {
        let mut queues = self.queues();
        match entry_of(&mut queues, key, id) {
            Some(entry) if matches!(entry.turn, Some(Given::Reserved)) => {
                entry.turn = Some(Given::Handed(handed));
                entry.wake.notify_one();
                None
            }
            _ => Some(handed),
        }
    }

    /// The handover to reserved waiter `id` did not happen: it waits on.
    pub(crate) fn unreserve(&self, key: &NameKey, id: u64) {
        let mut queues = self.queues();
        if let Some(entry) = entry_of(&mut queues, key, id) {
            if matches!(entry.turn, Some(Given::Reserved)) {
                entry.turn = None;
                entry.wake.notify_one();
            }
        }
    }

    /// A lease on `key` was taken that runs out at `until` unless renewed:
    /// the first waiter surveys then at the latest.
    pub(crate) fn held_until(&self, key: &NameKey, until: Instant) {
        if let Some(queue) = self.queues().get_mut(key) {
            queue.recheck(Some(until), true);
        }
    }

    /// How many names have waiters.
    #[cfg(test)]
    pub(crate) fn names(&self) -> usize {
        self.queues().len()
    }
}

/// Waiter `id`'s entry in `key`'s queue, if it is still there.
fn entry_of<'a>(
    queues: &'a mut HashMap<NameKey, Queue>,
    key: &NameKey,
    id: u64,
) -> Option<&'a mut Entry> {
    queues.get_mut(key)?.entries.iter_mut().find(|e| e.id == id)
}

/// One waiter's place in its name's queue; leaving (drop) passes a turn it
/// did not use on.
pub(crate) struct Waiter<'a> {
    waiters: &'a Waiters,
    key: NameKey,
    id: u64,
    wake: Arc<Notify>,
}

impl Waiter<'_> {
    /// This waiter takes a lease handed over by a holder here.
    pub(crate) fn wants(&self, wanted: Wanted) {
        let mut queues = self.waiters.queues();
        if let Some(entry) = entry_of(&mut queues, &self.key, self.id) {
            entry.wanted = Some(Arc::new(wanted));
        }
    }

    /// Sets when the first waiter surveys next (`None`: at the fallback
    /// its next wait gives).
    pub(crate) fn recheck_at(&self, at: Option<Instant>) {
        if let Some(queue) = self.waiters.queues().get_mut(&self.key) {
            queue.recheck(at, false);
        }
    }

    /// Waits for this waiter's next turn: a freed slot, or, while it is
    /// first, the recheck time (`fallback` from now when none was set), or
    /// `until`.
    pub(crate) async fn next_turn(&self, until: Option<Instant>, fallback: Instant) -> Turn {
        loop {
            let wake_at = {
                let mut queues = self.waiters.queues();
                let Some(queue) = queues.get_mut(&self.key) else {
                    return Turn::Deadline; // unreachable while the waiter lives
                };
                let first = queue.entries.front().is_some_and(|e| e.id == self.id);
                let Some(entry) = queue.entries.iter_mut().find(|e| e.id == self.id) else {
                    return Turn::Deadline;
                };
                match entry.turn.take() {
                    Some(Given::Freed(freed)) => return Turn::Freed(freed),
                    Some(Given::Handed(handed)) => return Turn::Handed(handed),
                    Some(Given::Reserved) => entry.turn = Some(Given::Reserved),
                    None => {}
                }
                let reserved = entry.turn.is_some();
                let now = Instant::now();
                if until.is_some_and(|until| until <= now) {
                    return Turn::Deadline;
                }
                // A lease is on its way to a reserved waiter: no survey.
                let recheck =
                    (first && !reserved).then(|| *queue.recheck_at.get_or_insert(fallback));
                if recheck.is_some_and(|at| at <= now) {
                    queue.recheck_at = None;
                    return Turn::Recheck;
                }
                [until, recheck].into_iter().flatten().min()
            };
            let notified = self.wake.notified();
            match wake_at {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
                None => notified.await,
            }
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut queues = self.waiters.queues();
        let Some(queue) = queues.get_mut(&self.key) else {
            return;
        };
        let Some(at) = queue.entries.iter().position(|e| e.id == self.id) else {
            return;
        };
        let entry = queue.entries.remove(at).expect("position is in range");
        let orphan = match entry.turn {
            Some(Given::Freed(turn)) => {
                queue.give(turn);
                None
            }
            // A reserved waiter's releaser finds it gone and releases the
            // lease itself.
            Some(Given::Reserved) | None => None,
            Some(Given::Handed(handed)) => Some(handed),
        };
        if queue.entries.is_empty() {
            queues.remove(&self.key);
        } else if at == 0 {
            // A new first waiter: it takes over the rechecks.
            if let Some(first) = queue.entries.front() {
                first.wake.notify_one();
            }
        }
        drop(queues);
        if let Some(handed) = orphan {
            handed.orphan();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NameKey {
        ("locks".into(), "n".into())
    }

    fn freed(marker: i64) -> Freed {
        Freed {
            slot: 0,
            marker,
            limit: 1,
            at_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_release_gives_one_turn_once() {
        let waiters = Waiters::default();
        let (first, _) = waiters.join(&key());
        let (second, ahead) = waiters.join(&key());
        assert_eq!(ahead, 1);
        assert!(waiters.freed(&key(), freed(2)));
        // Told again (the events log after this process's own release).
        assert!(!waiters.freed(&key(), freed(2)));
        let now = Instant::now();
        assert!(matches!(first.next_turn(Some(now), now).await, Turn::Freed(f) if f == freed(2)));
        assert!(matches!(
            second.next_turn(Some(now), now).await,
            Turn::Deadline
        ));
    }

    #[tokio::test]
    async fn an_unused_turn_passes_on_and_empty_queues_go() {
        let waiters = Waiters::default();
        let (first, _) = waiters.join(&key());
        let (second, _) = waiters.join(&key());
        waiters.freed(&key(), freed(4));
        drop(first);
        let now = Instant::now();
        assert!(matches!(
            second.next_turn(Some(now), now).await,
            Turn::Freed(f) if f == freed(4)
        ));
        drop(second);
        assert_eq!(waiters.names(), 0);
    }

    #[tokio::test]
    async fn only_the_first_waiter_rechecks() {
        let waiters = Waiters::default();
        let (first, _) = waiters.join(&key());
        let (second, _) = waiters.join(&key());
        let now = Instant::now();
        first.recheck_at(Some(now));
        assert!(matches!(
            second.next_turn(Some(now), now).await,
            Turn::Deadline
        ));
        assert!(matches!(first.next_turn(None, now).await, Turn::Recheck));
    }

    fn wanted() -> Wanted {
        Wanted {
            request: AcquireRequest {
                name: "n".into(),
                limit: 1,
                ttl: std::time::Duration::from_secs(15),
                value: String::new(),
            },
            unit: "u".into(),
        }
    }

    /// A handed lease whose `orphan` counts into `released`.
    fn handed(released: &Arc<std::sync::atomic::AtomicUsize>) -> Handed {
        let grant = Grant {
            name: "n".into(),
            limit: 1,
            holder: "n/0/2".into(),
            fencing_token: Some(2),
            ttl: std::time::Duration::from_secs(15),
            proven_until: None,
            renewal_unit: None,
            detail: Arc::new(()),
        };
        let released = released.clone();
        Handed::new(
            grant,
            Instant::now(),
            Box::new(move || {
                released.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        )
    }

    #[tokio::test]
    async fn a_handed_lease_goes_to_the_first_waiter_that_wants_one() {
        let waiters = Waiters::default();
        let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (plain, _) = waiters.join(&key());
        let (wanting, _) = waiters.join(&key());
        wanting.wants(wanted());
        let (id, what) = waiters.reserve(&key()).expect("a waiter wants one");
        assert_eq!(what.unit, "u");
        // Reserved: no second reservation, and no recheck meanwhile.
        assert!(waiters.reserve(&key()).is_none());
        assert!(waiters.hand(&key(), id, handed(&released)).is_none());
        let now = Instant::now();
        match wanting.next_turn(Some(now), now).await {
            Turn::Handed(lease) => assert_eq!(lease.taken().0.fencing_token, Some(2)),
            _ => panic!("the wanting waiter gets the lease"),
        }
        assert!(matches!(
            plain.next_turn(Some(now), now).await,
            Turn::Deadline
        ));
        assert_eq!(released.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_lease_handed_to_a_waiter_that_left_is_released() {
        let waiters = Waiters::default();
        let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Left after the lease was handed, before taking it.
        let (first, _) = waiters.join(&key());
        first.wants(wanted());
        let (id, _) = waiters.reserve(&key()).unwrap();
        assert!(waiters.hand(&key(), id, handed(&released)).is_none());
        drop(first);
        assert_eq!(released.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Left while reserved: the lease comes back to its releaser.
        let (second, _) = waiters.join(&key());
        second.wants(wanted());
        let (id, _) = waiters.reserve(&key()).unwrap();
        drop(second);
        let back = waiters.hand(&key(), id, handed(&released));
        back.expect("the waiter has gone").orphan();
        assert_eq!(released.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(waiters.names(), 0);
    }

    #[tokio::test]
    async fn an_unused_reservation_lets_the_waiter_wait_on() {
        let waiters = Waiters::default();
        let (first, _) = waiters.join(&key());
        first.wants(wanted());
        let (id, _) = waiters.reserve(&key()).unwrap();
        waiters.unreserve(&key(), id);
        assert!(waiters.freed(&key(), freed(6)));
        let now = Instant::now();
        assert!(matches!(first.next_turn(Some(now), now).await, Turn::Freed(f) if f == freed(6)));
    }
}

//! This process's waiters on each MongoDB lock, in arrival order. A freed
//! slot (a release seen in the events log, or this process's own release,
//! told at once without a server read) gives a turn to one waiter only,
//! carrying which generation was freed, so the waiter inserts the next one
//! without surveying first; a waiter that loses that insert waits again
//! without a request. Only the first waiter also wakes at the holders'
//! expected expiry, to survey for a holder that died ([`Queue::recheck_at`]).
//! A name's queue exists only while it has waiters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::known::{Freed, NameKey};

/// What woke a waiter.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// A slot was freed: take it.
    Freed(Freed),
    /// The first waiter's time to survey (a holder may have expired).
    Recheck,
    /// The call's deadline came.
    Deadline,
}

struct Entry {
    id: u64,
    wake: Arc<Notify>,
    turn: Option<Freed>,
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
                entry.turn = Some(freed);
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

/// One waiter's place in its name's queue; leaving (drop) passes a turn it
/// did not use on.
pub(crate) struct Waiter<'a> {
    waiters: &'a Waiters,
    key: NameKey,
    id: u64,
    wake: Arc<Notify>,
}

impl Waiter<'_> {
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
                if let Some(freed) = entry.turn.take() {
                    return Turn::Freed(freed);
                }
                let now = Instant::now();
                if until.is_some_and(|until| until <= now) {
                    return Turn::Deadline;
                }
                let recheck = first.then(|| *queue.recheck_at.get_or_insert(fallback));
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
        if let Some(turn) = entry.turn {
            queue.give(turn);
        }
        if queue.entries.is_empty() {
            queues.remove(&self.key);
        } else if at == 0 {
            // A new first waiter: it takes over the rechecks.
            if let Some(first) = queue.entries.front() {
                first.wake.notify_one();
            }
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
        assert_eq!(first.next_turn(Some(now), now).await, Turn::Freed(freed(2)));
        assert_eq!(second.next_turn(Some(now), now).await, Turn::Deadline);
    }

    #[tokio::test]
    async fn an_unused_turn_passes_on_and_empty_queues_go() {
        let waiters = Waiters::default();
        let (first, _) = waiters.join(&key());
        let (second, _) = waiters.join(&key());
        waiters.freed(&key(), freed(4));
        drop(first);
        let now = Instant::now();
        assert_eq!(
            second.next_turn(Some(now), now).await,
            Turn::Freed(freed(4))
        );
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
        assert_eq!(second.next_turn(Some(now), now).await, Turn::Deadline);
        assert_eq!(first.next_turn(None, now).await, Turn::Recheck);
    }
}

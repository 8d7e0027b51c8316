//! The local waiters of one Consul key or semaphore prefix, in arrival order.
//! When the watched state shows a free slot, only the first waiter gets a
//! turn to attempt; the others keep waiting without a request. A turn is
//! given from a state no attempt has used yet, so a waiter that lost a race
//! (or won) never makes the next one attempt on the same, stale state.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::topics::Snapshot;

/// How many slots a state leaves free for one waiter.
pub(crate) type FreeSlots = Box<dyn Fn(&Snapshot) -> usize + Send>;

struct Entry {
    id: u64,
    free: FreeSlots,
    /// The waiter saw the lock busy at this index itself: no turn from an
    /// older state.
    seen: u64,
    wake: Arc<Notify>,
    turn: bool,
}

#[derive(Default)]
struct State {
    next_id: u64,
    entries: VecDeque<Entry>,
    /// States up to this index were used by an attempt: no turn from them.
    used_through: u64,
    /// A waiter is attempting now (one at a time).
    turn_out: bool,
}

/// The queue of one topic.
#[derive(Default)]
pub(crate) struct WaitQueue {
    state: Mutex<State>,
    /// Notified when a waiter joins (a topic with waiters may poll sooner).
    pub(crate) joined: Notify,
    /// Notified when an attempt ends (its waiter waits again or leaves).
    settled: Notify,
}

impl WaitQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many waiters are queued.
    pub(crate) fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// Resolves once no waiter is attempting.
    pub(crate) async fn settled(&self) {
        loop {
            let settled = self.settled.notified();
            if !self.state().turn_out {
                return;
            }
            settled.await;
        }
    }

    /// Queues a waiter at the back; `free` judges states for it, and only
    /// states newer than `seen` (where it found the lock busy) count.
    pub(crate) fn join(&self, free: FreeSlots, seen: u64) -> (u64, Arc<Notify>) {
        let wake = Arc::new(Notify::new());
        let id = {
            let mut state = self.state();
            let id = state.next_id;
            state.next_id += 1;
            state.entries.push_back(Entry {
                id,
                free,
                seen,
                wake: wake.clone(),
                turn: false,
            });
            id
        };
        self.joined.notify_waiters();
        (id, wake)
    }

    /// Gives the first waiter a turn if `snapshot` shows a free slot, no
    /// attempt used it yet and nobody is attempting.
    pub(crate) fn dispatch(&self, snapshot: Option<&Snapshot>) {
        let Some(snapshot) = snapshot else { return };
        let mut state = self.state();
        if state.turn_out || snapshot.index <= state.used_through {
            return;
        }
        let Some(head) = state.entries.front_mut() else {
            return;
        };
        if snapshot.index > head.seen && (head.free)(snapshot) > 0 {
            head.turn = true;
            head.wake.notify_one();
            state.turn_out = true;
        }
    }

    /// True while waiter `id` has the turn.
    pub(crate) fn has_turn(&self, id: u64) -> bool {
        self.state()
            .entries
            .iter()
            .any(|entry| entry.id == id && entry.turn)
    }

    /// Waiter `id` attempted on the state at `index` and must wait again:
    /// it keeps its place; the turn passes on only from a newer state.
    pub(crate) fn attempted(&self, id: u64, index: u64, current: Option<&Snapshot>) {
        {
            let mut state = self.state();
            state.used_through = state.used_through.max(index);
            if let Some(entry) = state.entries.iter_mut().find(|e| e.id == id) {
                if entry.turn {
                    entry.turn = false;
                    state.turn_out = false;
                }
            }
        }
        self.settled.notify_waiters();
        self.dispatch(current);
    }

    /// Waiter `id` leaves (granted, timed out, cancelled). `used` is the
    /// index of the state its last attempt used, if it attempted.
    pub(crate) fn leave(&self, id: u64, used: Option<u64>, current: Option<&Snapshot>) {
        {
            let mut state = self.state();
            if let Some(index) = used {
                state.used_through = state.used_through.max(index);
            }
            if let Some(at) = state.entries.iter().position(|e| e.id == id) {
                if state.entries[at].turn {
                    state.turn_out = false;
                }
                state.entries.remove(at);
            }
        }
        self.settled.notify_waiters();
        self.dispatch(current);
    }
}

/// Waits until waiter `id` of `queue` has the turn (true) or `until` passes
/// (false).
pub(crate) async fn wait_turn(
    queue: &WaitQueue,
    id: u64,
    wake: &Notify,
    until: Option<Instant>,
) -> bool {
    loop {
        if queue.has_turn(id) {
            return true;
        }
        match until {
            Some(until) => {
                if tokio::time::timeout_at(until, wake.notified())
                    .await
                    .is_err()
                {
                    return queue.has_turn(id);
                }
            }
            None => wake.notified().await,
        }
    }
}

//! Shared blocking queries: one per (client, key or prefix). Every waiter,
//! loss watch and event stream of a client on the same key subscribes to
//! one [`Topic`], whose task runs the blocking query and publishes each new
//! state as a [`Snapshot`].
//!
//! A blocking query is never abandoned mid-flight: Consul's agent does not
//! notice a client that hangs up on one and keeps counting its connection
//! until the wait ends. So when the last subscriber goes, the task lets the
//! query in flight finish (it usually ends at once: the grant or release
//! that ended the subscription changed the key) and stops then; a
//! subscriber that comes back meanwhile picks the same query up again.
//! Each query waits at most [`WAIT`], which bounds that tail.
//!
//! All long-polls of a client stay within one cap (`max_long_polls`, split
//! in two halves so neither kind can starve the other): topics with local
//! waiters draw from one half, topics only watched (held leases) from the
//! other, event streams from either, and a topic polls only while it holds
//! a permit.
//! Short calls are capped separately in [`super::http`]. Consul refuses a
//! client address more than `http_max_conns_per_client` (200) connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::http::{next_index, ConsulHttp, KvPair, KvRead, ReadMode};
use super::wait_queue::WaitQueue;

/// Pause after a failed read before the next; doubles up to 5 s.
const RETRY: Duration = Duration::from_millis(200);
/// Longest wait of one blocking query: a key that never changes costs one
/// read per this long.
const WAIT: Duration = Duration::from_secs(60);

/// One state of a topic's key or prefix, as a read returned it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The read's `X-Consul-Index`.
    pub index: u64,
    /// The entries (one at most for a key, every key under a prefix).
    pub pairs: Vec<KvPair>,
}

impl Snapshot {
    /// What a waiter or watcher can tell apart: keys, holders, versions.
    fn same_content(&self, other: &[KvPair]) -> bool {
        self.pairs.len() == other.len()
            && self.pairs.iter().zip(other).all(|(a, b)| {
                a.key == b.key
                    && a.modify_index == b.modify_index
                    && a.session == b.session
                    && a.flags == b.flags
            })
    }

    /// The entry for exactly `key`.
    pub(crate) fn pair(&self, key: &str) -> Option<&KvPair> {
        self.pairs.iter().find(|p| p.key == key)
    }
}

/// What a topic is shared through.
struct Shared {
    key: String,
    recurse: bool,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    queue: WaitQueue,
    /// An event stream's topic: it may draw from either half of the cap,
    /// so held leases' loss watches cannot keep it from starting.
    essential: bool,
    /// [`Topic`] handles alive.
    subscribers: AtomicUsize,
    /// Notified when the last handle goes.
    idle: Notify,
}

impl Shared {
    /// Publishes `read` if it differs from the last state; true if it did.
    fn publish(&self, read: KvRead) -> bool {
        let published = self.snapshots.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|s| s.same_content(&read.pairs))
            {
                return false;
            }
            *current = Some(Arc::new(Snapshot {
                index: read.index,
                pairs: read.pairs,
            }));
            true
        });
        if published {
            self.queue.dispatch(self.snapshots.borrow().as_deref());
        }
        published
    }
}

/// A subscription to one key's (or prefix's) state. Cloning the `Arc`
/// shares it; the blocking query stops after the last handle goes.
pub(crate) struct Topic {
    shared: Arc<Shared>,
}

impl Drop for Topic {
    fn drop(&mut self) {
        if self.shared.subscribers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.idle.notify_one();
        }
    }
}

impl Topic {
    /// The latest state, once the first read returned.
    pub(crate) fn current(&self) -> Option<Arc<Snapshot>> {
        self.shared.snapshots.borrow().clone()
    }

    /// A receiver of every new state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.shared.snapshots.subscribe()
    }

    /// The local waiters on this key.
    pub(crate) fn queue(&self) -> &WaitQueue {
        &self.shared.queue
    }

    /// Resolves with the first published state whose index is at least
    /// `since` and that `judge` has a verdict on.
    pub(crate) async fn first<T>(
        &self,
        since: u64,
        mut judge: impl FnMut(&Snapshot) -> Option<T>,
    ) -> T {
        let mut states = self.subscribe();
        loop {
            let state = states.borrow_and_update().clone();
            if let Some(verdict) = state.filter(|s| s.index >= since).and_then(|s| judge(&s)) {
                return verdict;
            }
            if states.changed().await.is_err() {
                // The sender lives in `shared`, which `self` keeps.
                return std::future::pending().await;
            }
        }
    }
}

/// The two halves of the long-poll cap.
struct Permits {
    waits: Arc<Semaphore>,
    watches: Arc<Semaphore>,
}

type Live = Arc<Mutex<HashMap<(String, bool), Arc<Shared>>>>;

fn lock(live: &Live) -> MutexGuard<'_, HashMap<(String, bool), Arc<Shared>>> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

/// The topics of one client.
pub(crate) struct Topics {
    http: Arc<ConsulHttp>,
    permits: Arc<Permits>,
    /// Every topic whose task runs, subscribed or finishing its last query.
    live: Live,
}

impl Topics {
    /// Topics over `http` with at most `max_long_polls` blocking queries at
    /// once (at least 2).
    pub(crate) fn new(http: Arc<ConsulHttp>, max_long_polls: usize) -> Self {
        let half = (max_long_polls / 2).max(1);
        Topics {
            http,
            permits: Arc::new(Permits {
                waits: Arc::new(Semaphore::new(half)),
                watches: Arc::new(Semaphore::new(max_long_polls.saturating_sub(half).max(1))),
            }),
            live: Live::default(),
        }
    }

    /// The topic of `key` (with `recurse`, every key under it), if some
    /// subscriber keeps it.
    pub(crate) fn existing(&self, key: &str, recurse: bool) -> Option<Arc<Topic>> {
        let live = lock(&self.live);
        let shared = live.get(&(key.to_string(), recurse))?;
        (shared.subscribers.load(Ordering::SeqCst) > 0).then(|| subscribe(shared))
    }

    /// The topic of `key`, started if nobody watches it yet.
    pub(crate) fn get(&self, key: &str, recurse: bool) -> Arc<Topic> {
        self.start(key, recurse, false)
    }

    /// The topic of an event stream on `key` (see `Shared::essential`).
    pub(crate) fn get_for_stream(&self, key: &str, recurse: bool) -> Arc<Topic> {
        self.start(key, recurse, true)
    }

    fn start(&self, key: &str, recurse: bool, essential: bool) -> Arc<Topic> {
        let mut live = lock(&self.live);
        let id = (key.to_string(), recurse);
        if let Some(shared) = live.get(&id) {
            return subscribe(shared);
        }
        let shared = Arc::new(Shared {
            key: key.to_string(),
            recurse,
            snapshots: watch::channel(None).0,
            queue: WaitQueue::default(),
            essential,
            subscribers: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let topic = subscribe(&shared);
        live.insert(id.clone(), shared.clone());
        crate::runtime::spawn(run(
            self.http.clone(),
            self.permits.clone(),
            self.live.clone(),
            id,
            shared,
        ));
        topic
    }
}

/// A new handle on `shared` (called with the live map locked).
fn subscribe(shared: &Arc<Shared>) -> Arc<Topic> {
    shared.subscribers.fetch_add(1, Ordering::SeqCst);
    Arc::new(Topic {
        shared: shared.clone(),
    })
}

/// A topic's task: see [`poll`].
async fn run(
    http: Arc<ConsulHttp>,
    permits: Arc<Permits>,
    live: Live,
    id: (String, bool),
    shared: Arc<Shared>,
) {
    let retire = || {
        let mut map = lock(&live);
        let gone = shared.subscribers.load(Ordering::SeqCst) == 0;
        if gone {
            map.remove(&id);
        }
        gone
    };
    poll(&http, &permits, &shared, retire).await;
}

/// Resolves once no handle is left.
async fn idle(shared: &Shared) {
    loop {
        let notified = shared.idle.notified();
        if shared.subscribers.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// A permit for one long-poll: from the waits half as soon as the topic has
/// a waiter (or is an event stream's), else from the watches half,
/// whichever comes first; true when it is a waits permit.
async fn permit(permits: &Permits, shared: &Shared) -> (OwnedSemaphorePermit, bool) {
    let for_waiters = async {
        loop {
            let joined = shared.queue.joined.notified();
            if shared.essential || shared.queue.len() > 0 {
                break;
            }
            joined.await;
        }
        permits.waits.clone().acquire_owned().await
    };
    let closed = "polylock never closes its long-poll semaphores";
    tokio::select! {
        permit = permits.watches.clone().acquire_owned() => (permit.expect(closed), false),
        permit = for_waiters => (permit.expect(closed), true),
    }
}

/// The topic's task: holds a long-poll permit and publishes every new state
/// until no handle is left after a query came back. A waits permit goes
/// back (between two queries, once an attempt in progress has settled) when
/// the topic has no waiter left, so topics only watched (a lease taken by a
/// waiter) cannot starve later waiters; the topic then queues for a
/// watches permit. `retire` takes the topic off
/// the live map if no handle is left (under the map's lock, so no
/// subscriber comes in between) and says whether it did.
async fn poll(http: &ConsulHttp, permits: &Permits, shared: &Shared, retire: impl Fn() -> bool) {
    let mut held: Option<(OwnedSemaphorePermit, bool)> = None;
    let mut index = 0;
    let mut retry = RETRY;
    loop {
        if held.is_none() {
            tokio::select! {
                permit = permit(permits, shared) => held = Some(permit),
                _ = idle(shared) => {
                    if retire() { return }
                    continue;
                }
            }
        }
        let started = Instant::now();
        let mode = if index == 0 {
            ReadMode::Now
        } else {
            ReadMode::Blocking {
                index,
                until: Some(started + WAIT),
            }
        };
        // Never dropped mid-flight (see the module docs). The next query
        // goes out at once: a blocking query returns only on a change (or
        // when its wait ends), so this is one read per change, and states
        // closer together than a round trip merge into one.
        let pause = match http.read(&shared.key, shared.recurse, mode, false).await {
            Ok(read) => {
                index = next_index(index, read.index);
                shared.publish(read);
                retry = RETRY;
                started
            }
            Err(error) => {
                tracing::debug!(%error, key = shared.key, "consul blocking query failed; retrying");
                let pause = Instant::now() + retry;
                retry = (retry * 2).min(Duration::from_secs(5));
                pause
            }
        };
        if retire() {
            return;
        }
        // A waiter attempting now (often on the state just read) goes
        // first: its one request takes the connection this query freed, and
        // it is about to leave or wait again, which decides the permit.
        shared.queue.settled().await;
        if !shared.essential
            && held.as_ref().is_some_and(|(_, waits)| *waits)
            && shared.queue.len() == 0
        {
            held = None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(pause) => {}
            _ = idle(shared) => if retire() { return },
        }
    }
}

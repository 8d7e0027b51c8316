//! The in-process lock table behind `memory://`: limits, TTL expiry, fencing
//! tokens and a change signal that wakes waiters without polling.
//!
//! Stores are named: every client of `memory://NAME` in one process shares
//! the store `NAME` (`memory://` is the store named `""`).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Sleep};

use crate::backend::{AcquireRequest, Attempt, ChangeMarker, Grant, RenewOutcome};
use crate::error::{Error, Result};
use crate::model::{LockEvent, LockEventKind};

/// How many lock events a slow `watch` consumer may fall behind by.
const EVENT_BACKLOG: usize = 1024;

/// What [`MemoryStore::holders`] reports about one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderInfo {
    /// The holder id (the lease's [`crate::Lease::holder`]).
    pub holder: String,
    /// The holder value.
    pub value: String,
    /// The grant's fencing token.
    pub fencing_token: u64,
    /// Time left before the store frees the slot unless renewed.
    pub expires_in: Duration,
}

/// One holder of a lock. Small: a process may hold many thousands.
struct Holder {
    /// The `N` of its holder id `memory-N`.
    id: u64,
    token: u64,
    expires: Instant,
    value: Arc<str>,
    /// The loss watchers waiting on it ([`MemoryStore::watch`]).
    watchers: Watchers,
}

/// The wakers of the watchers of one holder: woken when it is removed or
/// its expiry moves closer, never by other changes to the table.
#[derive(Default)]
enum Watchers {
    #[default]
    None,
    One(Waker),
    Many(Vec<Waker>),
}

impl Watchers {
    fn add(&mut self, waker: &Waker) {
        match self {
            Watchers::None => *self = Watchers::One(waker.clone()),
            Watchers::One(known) if known.will_wake(waker) => {}
            Watchers::One(_) => {
                let Watchers::One(first) = std::mem::take(self) else {
                    unreachable!()
                };
                *self = Watchers::Many(vec![first, waker.clone()]);
            }
            Watchers::Many(known) => {
                if !known.iter().any(|k| k.will_wake(waker)) {
                    known.push(waker.clone());
                }
            }
        }
    }

    fn wake(self) {
        match self {
            Watchers::None => {}
            Watchers::One(waker) => waker.wake(),
            Watchers::Many(wakers) => wakers.into_iter().for_each(Waker::wake),
        }
    }
}

/// What [`MemoryStore::snapshot`] reports: the lock's limit and live holders.
pub(crate) struct Snapshot {
    pub limit: Option<u32>,
    pub holders: Vec<HolderInfo>,
}

struct Entry {
    limit: u32,
    /// In order of their ids (a new holder has the highest).
    holders: Vec<Holder>,
}

impl Entry {
    /// Drops expired holders; returns them (id, token) and their watchers.
    fn purge(&mut self, now: Instant) -> Removed {
        let mut removed = Removed::default();
        if self.holders.iter().all(|h| h.expires > now) {
            return removed;
        }
        for holder in self.holders.extract_if(.., |h| h.expires <= now) {
            removed.add(holder);
        }
        removed
    }

    fn holder(&mut self, id: u64) -> Option<&mut Holder> {
        let at = self.holders.binary_search_by_key(&id, |h| h.id).ok()?;
        Some(&mut self.holders[at])
    }

    fn remove(&mut self, id: u64) -> Option<Holder> {
        let at = self.holders.binary_search_by_key(&id, |h| h.id).ok()?;
        Some(self.holders.remove(at))
    }

    fn earliest_expiry(&self) -> Option<Instant> {
        self.holders.iter().map(|h| h.expires).min()
    }
}

/// Holders taken out of the table: their expiry events to publish and
/// their watchers to wake, once the table is unlocked.
#[derive(Default)]
struct Removed {
    expired: Vec<(u64, u64)>,
    watchers: Vec<Watchers>,
}

impl Removed {
    fn add(&mut self, holder: Holder) {
        self.expired.push((holder.id, holder.token));
        if !matches!(holder.watchers, Watchers::None) {
            self.watchers.push(holder.watchers);
        }
    }

    fn wake(self) -> Vec<(u64, u64)> {
        self.watchers.into_iter().for_each(Watchers::wake);
        self.expired
    }
}

#[derive(Default)]
struct Table {
    locks: HashMap<Box<str>, Entry>,
    last_token: u64,
    last_holder: u64,
    /// The holder value stored last: holders with the same value share it.
    last_value: Option<Arc<str>>,
}

impl Table {
    fn holder(&mut self, name: &str, id: u64) -> Option<&mut Holder> {
        self.locks.get_mut(name)?.holder(id)
    }

    fn value(&mut self, value: &str) -> Arc<str> {
        match &self.last_value {
            Some(last) if **last == *value => last.clone(),
            _ => self.last_value.insert(value.into()).clone(),
        }
    }
}

/// The holder id of the holder numbered `id`.
fn holder_name(id: u64) -> String {
    format!("memory-{id}")
}

/// The number of the holder id `holder` (`memory-N`), if it is one.
fn holder_id(holder: &str) -> Option<u64> {
    let digits = holder.strip_prefix("memory-")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An in-process lock table.
pub struct MemoryStore {
    table: Mutex<Table>,
    version: watch::Sender<u64>,
    events: broadcast::Sender<LockEvent>,
}

/// The private part of a memory grant (nothing: the grant's name and
/// holder id find the holder). One is shared by every grant.
pub(crate) struct MemoryDetail;

/// The detail of every memory grant.
fn detail() -> Arc<dyn Any + Send + Sync> {
    static DETAIL: OnceLock<Arc<MemoryDetail>> = OnceLock::new();
    DETAIL.get_or_init(|| Arc::new(MemoryDetail)).clone()
}

/// Why a watched memory lease is gone.
const GONE: &str = "the lease expired or was revoked";

impl MemoryStore {
    fn new() -> Self {
        MemoryStore {
            table: Mutex::new(Table::default()),
            version: watch::channel(0).0,
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    /// The store named `namespace`, shared by every `memory://namespace` client
    /// in this process.
    pub fn named(namespace: &str) -> Arc<MemoryStore> {
        static STORES: OnceLock<Mutex<HashMap<String, Arc<MemoryStore>>>> = OnceLock::new();
        let stores = STORES.get_or_init(Default::default);
        let mut stores = stores.lock().unwrap_or_else(|p| p.into_inner());
        stores
            .entry(namespace.to_string())
            .or_insert_with(|| Arc::new(MemoryStore::new()))
            .clone()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces a change to waiters (not to watchers: they are woken by
    /// what happens to their own holder).
    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Publishes a lock event (nobody listening is fine).
    fn publish(&self, name: &str, kind: LockEventKind, holder: u64, token: u64) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let _ = self.events.send(LockEvent {
            name: name.to_string(),
            kind,
            holder: holder_name(holder),
            fencing_token: Some(token),
        });
    }

    /// Publishes the expiry of holders a purge removed, waking their watchers.
    fn publish_expired(&self, name: &str, removed: Removed) {
        for (holder, token) in removed.wake() {
            self.publish(name, LockEventKind::Expired, holder, token);
        }
    }

    /// Every lock event of this store from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LockEvent> {
        self.events.subscribe()
    }

    /// Removes `holder` from `name` (purging expired holders on the way and
    /// dropping the entry once idle), announces the change, wakes the
    /// removed holders' watchers, and returns the removed holder's token if
    /// it was there.
    fn remove_holder(&self, name: &str, holder: &str) -> Option<u64> {
        let id = holder_id(holder)?;
        let now = Instant::now();
        let (removed, purged) = {
            let mut table = self.table();
            let entry = table.locks.get_mut(name)?;
            let purged = entry.purge(now);
            let removed = entry.remove(id);
            if entry.holders.is_empty() {
                table.locks.remove(name);
            }
            (removed, purged)
        };
        self.bump();
        self.publish_expired(name, purged);
        let removed = removed?;
        removed.watchers.wake();
        self.publish(name, LockEventKind::Released, id, removed.token);
        Some(removed.token)
    }

    /// The live holders of `name`.
    pub fn holders(&self, name: &str) -> Vec<HolderInfo> {
        let now = Instant::now();
        let table = self.table();
        let Some(entry) = table.locks.get(name) else {
            return Vec::new();
        };
        entry
            .holders
            .iter()
            .filter(|h| h.expires > now)
            .map(|h| HolderInfo {
                holder: holder_name(h.id),
                value: h.value.to_string(),
                fencing_token: h.token,
                expires_in: h.expires - now,
            })
            .collect()
    }

    /// The limit and live holders of `name`.
    pub(crate) fn snapshot(&self, name: &str) -> Snapshot {
        let holders = self.holders(name);
        let limit = if holders.is_empty() {
            None
        } else {
            self.table().locks.get(name).map(|entry| entry.limit)
        };
        Snapshot { limit, holders }
    }

    /// The names starting with `prefix` that have a live holder, sorted.
    pub fn held_names(&self, prefix: &str) -> Vec<String> {
        let now = Instant::now();
        let mut names: Vec<String> = self
            .table()
            .locks
            .iter()
            .filter(|(name, entry)| {
                name.starts_with(prefix) && entry.holders.iter().any(|h| h.expires > now)
            })
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names
    }

    /// Extends `holder`'s live lease on `name` to `ttl` from now; false if
    /// it does not hold `name`. An expiry brought closer (an operator's
    /// shorter TTL) wakes the holder's watchers, which then watch it.
    pub(crate) fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> bool {
        let Some(id) = holder_id(holder) else {
            return false;
        };
        let now = Instant::now();
        let closer = {
            let mut table = self.table();
            match table.holder(name, id).filter(|h| h.expires > now) {
                Some(h) => {
                    let expires = now + ttl;
                    let closer = expires < h.expires;
                    h.expires = expires;
                    closer.then(|| std::mem::take(&mut h.watchers))
                }
                None => return false,
            }
        };
        if let Some(watchers) = closer {
            watchers.wake();
        }
        true
    }

    /// Takes `holder`'s lease on `name` away, as an operator (or a test)
    /// would; true if it was held.
    pub fn revoke(&self, name: &str, holder: &str) -> bool {
        self.remove_holder(name, holder).is_some()
    }

    pub(crate) fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        let now = Instant::now();
        let mut table = self.table();
        let version = *self.version.borrow();
        let entry = match table.locks.get_mut(request.name.as_str()) {
            Some(entry) => entry,
            None => table
                .locks
                .entry(request.name.as_str().into())
                .or_insert_with(|| Entry {
                    limit: request.limit,
                    holders: Vec::new(),
                }),
        };
        let purged = entry.purge(now);
        if entry.holders.is_empty() {
            entry.limit = request.limit;
        }
        if entry.limit != request.limit {
            let existing = entry.limit;
            drop(table);
            if !purged.expired.is_empty() {
                self.bump();
                self.publish_expired(&request.name, purged);
            }
            return Err(Error::LimitMismatch {
                name: request.name.clone(),
                requested: request.limit,
                existing: Some(existing),
            });
        }
        if entry.holders.len() >= entry.limit as usize {
            drop(table);
            if !purged.expired.is_empty() {
                self.bump();
                self.publish_expired(&request.name, purged);
            }
            return Ok(Attempt::Busy(ChangeMarker {
                version,
                retry_after: None,
            }));
        }
        table.last_token += 1;
        table.last_holder += 1;
        let (token, id) = (table.last_token, table.last_holder);
        let value = table.value(&request.value);
        let entry = table
            .locks
            .get_mut(request.name.as_str())
            .expect("entry inserted above");
        if entry.limit == 1 {
            entry.holders.reserve_exact(1);
        }
        entry.holders.push(Holder {
            id,
            token,
            expires: now + request.ttl,
            value,
            watchers: Watchers::None,
        });
        drop(table);
        self.bump();
        self.publish_expired(&request.name, purged);
        self.publish(&request.name, LockEventKind::Acquired, id, token);
        Ok(Attempt::Acquired(Grant {
            name: request.name.clone(),
            limit: request.limit,
            holder: holder_name(id),
            fencing_token: Some(token),
            ttl: request.ttl,
            proven_until: None,
            renewal_unit: None,
            detail: detail(),
        }))
    }

    /// Waits for any change past `marker`, an expiry among `name`'s holders,
    /// or `until`.
    pub(crate) async fn wait_for_change(
        &self,
        name: &str,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) {
        let mut rx = self.version.subscribe();
        if *rx.borrow_and_update() != marker.version {
            return;
        }
        let expiry = self
            .table()
            .locks
            .get(name)
            .and_then(Entry::earliest_expiry);
        let wake = [expiry, until].into_iter().flatten().min();
        match wake {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, rx.changed()).await;
            }
            None => {
                let _ = rx.changed().await;
            }
        }
    }

    pub(crate) fn renew(&self, grant: &Grant) -> RenewOutcome {
        if self.renew_holder(&grant.name, &grant.holder, grant.ttl) {
            RenewOutcome::Renewed { ttl: grant.ttl }
        } else {
            RenewOutcome::Lost {
                reason: GONE.into(),
            }
        }
    }

    pub(crate) fn release(&self, grant: &Grant) -> Result<()> {
        match self.remove_holder(&grant.name, &grant.holder) {
            Some(_) => Ok(()),
            None => Err(Error::Lost {
                name: grant.name.clone(),
                reason: "the lease expired or was revoked before the release".into(),
            }),
        }
    }

    /// Resolves with a reason once `grant` is no longer held: removed
    /// (released elsewhere, revoked, or expired and purged by another
    /// attempt on its name) or past its expiry. Only what happens to this
    /// holder wakes it; the keeper's deadline, which comes before the
    /// expiry, covers a lease that just runs out.
    pub(crate) fn watch<'a>(
        &'a self,
        grant: &'a Grant,
    ) -> impl Future<Output = String> + Send + 'a {
        Watch {
            store: self,
            grant,
            id: holder_id(&grant.holder).unwrap_or(0),
            woken: false,
            expiry: None,
        }
    }
}

/// The future of [`MemoryStore::watch`].
struct Watch<'a> {
    store: &'a MemoryStore,
    grant: &'a Grant,
    /// The holder's number (0, which no holder has, for a foreign id).
    id: u64,
    /// Polled before: only the store wakes a watcher, so the holder was
    /// removed or its expiry brought closer.
    woken: bool,
    /// Set once the expiry was brought closer: a timer for it.
    expiry: Option<Pin<Box<Sleep>>>,
}

impl Future for Watch<'_> {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        loop {
            let now = Instant::now();
            let expires = {
                let mut table = self.store.table();
                match table.holder(&self.grant.name, self.id) {
                    Some(holder) if holder.expires > now => {
                        holder.watchers.add(cx.waker());
                        holder.expires
                    }
                    _ => return Poll::Ready(GONE.into()),
                }
            };
            if !std::mem::replace(&mut self.woken, true) {
                return Poll::Pending;
            }
            // Still held after a wake-up: its expiry came closer; watch it.
            let timer = self
                .expiry
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(expires)));
            if timer.deadline() != expires {
                timer.as_mut().reset(expires);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take(store: &MemoryStore, name: &str, ttl: Duration) -> Grant {
        let request = AcquireRequest {
            name: name.into(),
            limit: 1,
            ttl,
            value: "value".into(),
        };
        match store.try_acquire(&request).unwrap() {
            Attempt::Acquired(grant) => grant,
            Attempt::Busy(_) => panic!("{name} is free"),
        }
    }

    // A runtime for the timer the watch arms after a shorter TTL; the watch
    // itself is polled by hand.
    #[tokio::test]
    async fn a_watcher_is_woken_only_by_what_happens_to_its_holder() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        let watched = take(&store, "watched", ttl);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut watch = Box::pin(store.watch(&watched));
        assert!(watch.as_mut().poll(&mut cx).is_pending());

        // Other names taken, renewed and released: not a wake-up.
        for i in 0..100 {
            let other = take(&store, &format!("other/{i}"), ttl);
            assert!(matches!(store.renew(&other), RenewOutcome::Renewed { .. }));
            store.release(&other).unwrap();
        }
        // Nor is its own renewal (its expiry moves away).
        assert!(matches!(
            store.renew(&watched),
            RenewOutcome::Renewed { .. }
        ));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);

        // An operator's shorter TTL is: the watcher then watches the expiry.
        assert!(store.renew_holder("watched", &watched.holder, Duration::from_secs(30)));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(watch.as_mut().poll(&mut cx).is_pending());

        // Revoked: woken once, and the watch resolves.
        assert!(store.revoke("watched", &watched.holder));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        assert_eq!(watch.as_mut().poll(&mut cx), Poll::Ready(GONE.to_string()));
    }

    #[test]
    fn holder_ids_round_trip_and_foreign_ones_match_nothing() {
        assert_eq!(holder_id(&holder_name(42)), Some(42));
        for foreign in [
            "memory-",
            "memory-042",
            "memory-+4",
            "memory-4x",
            "consul-4",
            "4",
        ] {
            assert_eq!(holder_id(foreign), None, "{foreign}");
        }
        let store = MemoryStore::new();
        let grant = take(&store, "held", Duration::from_secs(60));
        assert!(!store.revoke("held", "memory-0"));
        assert_eq!(store.holders("held")[0].holder, grant.holder);
    }
}

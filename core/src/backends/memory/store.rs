//! The in-process lock table behind `memory://`: limits, TTL expiry, fencing
//! tokens and a change signal that wakes waiters without polling.
//!
//! Stores are named: every client of `memory://NAME` in one process shares
//! the store `NAME` (`memory://` is the store named `""`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

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

struct Holder {
    value: String,
    token: u64,
    expires: Instant,
}

/// What [`MemoryStore::snapshot`] reports: the lock's limit and live holders.
pub(crate) struct Snapshot {
    pub limit: Option<u32>,
    pub holders: Vec<HolderInfo>,
}

struct Entry {
    limit: u32,
    holders: HashMap<String, Holder>,
}

impl Entry {
    /// Drops expired holders and returns them (id, token).
    fn purge(&mut self, now: Instant) -> Vec<(String, u64)> {
        let expired: Vec<(String, u64)> = self
            .holders
            .iter()
            .filter(|(_, h)| h.expires <= now)
            .map(|(id, h)| (id.clone(), h.token))
            .collect();
        for (id, _) in &expired {
            self.holders.remove(id);
        }
        expired
    }

    fn earliest_expiry(&self) -> Option<Instant> {
        self.holders.values().map(|h| h.expires).min()
    }
}

#[derive(Default)]
struct Table {
    locks: HashMap<String, Entry>,
    last_token: u64,
    last_holder: u64,
}

/// An in-process lock table.
pub struct MemoryStore {
    table: Mutex<Table>,
    version: watch::Sender<u64>,
    events: broadcast::Sender<LockEvent>,
}

/// The private part of a memory grant.
pub(crate) struct MemoryDetail;

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

    /// Announces a change to waiters and watchers.
    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Publishes a lock event (nobody listening is fine).
    fn publish(&self, name: &str, kind: LockEventKind, holder: &str, token: u64) {
        let _ = self.events.send(LockEvent {
            name: name.to_string(),
            kind,
            holder: holder.to_string(),
            fencing_token: Some(token),
        });
    }

    /// Publishes the expiry of holders a purge removed.
    fn publish_expired(&self, name: &str, expired: &[(String, u64)]) {
        for (holder, token) in expired {
            self.publish(name, LockEventKind::Expired, holder, *token);
        }
    }

    /// Every lock event of this store from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LockEvent> {
        self.events.subscribe()
    }

    /// Removes `holder` from `name` (purging expired holders on the way and
    /// dropping the entry once idle), announces the change, and returns the
    /// removed holder's token if it was there.
    fn remove_holder(&self, name: &str, holder: &str) -> Option<u64> {
        let now = Instant::now();
        let (removed, purged) = {
            let mut table = self.table();
            let entry = table.locks.get_mut(name)?;
            let purged = entry.purge(now);
            let removed = entry.holders.remove(holder).map(|h| h.token);
            if entry.holders.is_empty() {
                table.locks.remove(name);
            }
            (removed, purged)
        };
        self.bump();
        self.publish_expired(name, &purged);
        if let Some(token) = removed {
            self.publish(name, LockEventKind::Released, holder, token);
        }
        removed
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
            .filter(|(_, h)| h.expires > now)
            .map(|(id, h)| HolderInfo {
                holder: id.clone(),
                value: h.value.clone(),
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
                name.starts_with(prefix) && entry.holders.values().any(|h| h.expires > now)
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Extends `holder`'s live lease on `name` to `ttl` from now; false if
    /// it does not hold `name`.
    pub(crate) fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut table = self.table();
        match table
            .locks
            .get_mut(name)
            .and_then(|entry| entry.holders.get_mut(holder))
            .filter(|h| h.expires > now)
        {
            Some(h) => {
                h.expires = now + ttl;
                true
            }
            None => false,
        }
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
        let entry = table
            .locks
            .entry(request.name.clone())
            .or_insert_with(|| Entry {
                limit: request.limit,
                holders: HashMap::new(),
            });
        let purged = entry.purge(now);
        if entry.holders.is_empty() {
            entry.limit = request.limit;
        }
        if entry.limit != request.limit {
            return Err(Error::LimitMismatch {
                name: request.name.clone(),
                requested: request.limit,
                existing: Some(entry.limit),
            });
        }
        if entry.holders.len() >= entry.limit as usize {
            drop(table);
            if !purged.is_empty() {
                self.bump();
                self.publish_expired(&request.name, &purged);
            }
            return Ok(Attempt::Busy(ChangeMarker {
                version,
                retry_after: None,
            }));
        }
        table.last_token += 1;
        table.last_holder += 1;
        let token = table.last_token;
        let holder = format!("memory-{}", table.last_holder);
        let entry = table
            .locks
            .get_mut(&request.name)
            .expect("entry inserted above");
        entry.holders.insert(
            holder.clone(),
            Holder {
                value: request.value.clone(),
                token,
                expires: now + request.ttl,
            },
        );
        drop(table);
        self.bump();
        self.publish_expired(&request.name, &purged);
        self.publish(&request.name, LockEventKind::Acquired, &holder, token);
        Ok(Attempt::Acquired(Grant {
            name: request.name.clone(),
            limit: request.limit,
            holder,
            fencing_token: Some(token),
            ttl: request.ttl,
            proven_until: None,
            renewal_unit: None,
            detail: Arc::new(MemoryDetail),
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
                reason: "the lease expired or was revoked".into(),
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

    /// Resolves with a reason once `grant` is no longer held.
    pub(crate) async fn watch(&self, grant: &Grant) -> String {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            let now = Instant::now();
            let expires = self
                .table()
                .locks
                .get(&grant.name)
                .and_then(|entry| entry.holders.get(&grant.holder))
                .map(|holder| holder.expires)
                .filter(|expires| *expires > now);
            let Some(expires) = expires else {
                return "the lease expired or was revoked".into();
            };
            let _ = tokio::time::timeout_at(expires, rx.changed()).await;
        }
    }
}

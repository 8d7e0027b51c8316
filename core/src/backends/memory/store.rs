//! The in-process lock table behind `memory://`: limits, TTL expiry, fencing
//! tokens and a change signal that wakes waiters without polling.
//!
//! Stores are named: every client of `memory://NAME` in one process shares
//! the store `NAME` (`memory://` is the store named `""`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::{AcquireRequest, Attempt, ChangeMarker, Grant, RenewOutcome};
use crate::error::{Error, Result};

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

struct Entry {
    limit: u32,
    holders: HashMap<String, Holder>,
}

impl Entry {
    /// Drops expired holders; true when any went.
    fn purge(&mut self, now: Instant) -> bool {
        let before = self.holders.len();
        self.holders.retain(|_, h| h.expires > now);
        self.holders.len() != before
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
}

/// The private part of a memory grant.
pub(crate) struct MemoryDetail;

impl MemoryStore {
    fn new() -> Self {
        MemoryStore {
            table: Mutex::new(Table::default()),
            version: watch::channel(0).0,
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

    /// Takes `holder`'s lease on `name` away, as an operator (or a test)
    /// would; true if it was held.
    pub fn revoke(&self, name: &str, holder: &str) -> bool {
        let removed = {
            let mut table = self.table();
            let removed = table
                .locks
                .get_mut(name)
                .is_some_and(|entry| entry.holders.remove(holder).is_some());
            if removed && table.locks.get(name).is_some_and(|e| e.holders.is_empty()) {
                table.locks.remove(name);
            }
            removed
        };
        if removed {
            self.bump();
        }
        removed
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
                existing: entry.limit,
            });
        }
        if entry.holders.len() >= entry.limit as usize {
            drop(table);
            if purged {
                self.bump();
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
        let now = Instant::now();
        let mut table = self.table();
        match table
            .locks
            .get_mut(&grant.name)
            .and_then(|entry| entry.holders.get_mut(&grant.holder))
            .filter(|holder| holder.expires > now)
        {
            Some(holder) => {
                holder.expires = now + grant.ttl;
                RenewOutcome::Renewed { ttl: grant.ttl }
            }
            None => RenewOutcome::Lost {
                reason: "the lease expired or was revoked".into(),
            },
        }
    }

    pub(crate) fn release(&self, grant: &Grant) -> Result<()> {
        let now = Instant::now();
        let removed = {
            let mut table = self.table();
            let removed = table.locks.get_mut(&grant.name).and_then(|entry| {
                entry.purge(now);
                entry.holders.remove(&grant.holder)
            });
            if table
                .locks
                .get(&grant.name)
                .is_some_and(|e| e.holders.is_empty())
            {
                table.locks.remove(&grant.name);
            }
            removed
        };
        self.bump();
        match removed {
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

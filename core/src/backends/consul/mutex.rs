//! The mutex recipe, compatible with HashiCorp's `api.Lock` and
//! `consul lock -n 1`: the key itself, flagged with [`LOCK_FLAG`], held by a
//! session through `acquire`/`lock`.
//!
//! Acquire reads the key (to refuse non-lock data and learn the index to
//! block on), then takes it in one transaction guarded by `check-index` (or
//! `check-not-exists`), so flags cannot change between the check and the
//! take. The transaction's result gives the fencing token: the key's
//! `ModifyIndex` at acquisition, a Raft index, so it keeps increasing even
//! when the key is deleted and re-created. After a release the client keeps
//! the key's new index and the next acquire tries the guarded transaction
//! straight away: an uncontended acquire is then one request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::http::{describe, last_entry, ConsulHttp, KvPair, ReadMode, TxnKv, TxnOutcome};
use super::topics::Snapshot;
use super::{ConsulAttempt, Held};
use crate::backend::ChangeMarker;
use crate::error::{Error, Result};

/// `api.LockFlagValue`: marks a key as a lock.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// How many times a lost index race is retried before waiting instead.
const RACE_RETRIES: usize = 5;
/// Pause before retrying a key held back by a lock-delay.
pub(crate) const LOCK_DELAY_RETRY: Duration = Duration::from_millis(500);

/// Keys this client released, with their index right after the release.
#[derive(Default)]
pub(crate) struct ReleasedKeys(Mutex<HashMap<String, u64>>);

impl ReleasedKeys {
    pub(crate) fn take(&self, key: &str) -> Option<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    pub(crate) fn put(&self, key: &str, index: u64) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: this is an optimisation, not state.
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(key.to_string(), index);
    }
}

/// What a read showed of the key, as far as taking it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// No key: take it with `check-not-exists`.
    Absent,
    /// A free lock key at this `ModifyIndex`: take it with `check-index`.
    Free(u64),
    /// Held by a session.
    Held,
}

/// Judges the key's entry; a key that is not a lock is a conflict.
pub(crate) fn classify(name: &str, key: &str, pair: Option<&KvPair>) -> Result<Seen> {
    match pair {
        None => Ok(Seen::Absent),
        Some(pair) if pair.flags != LOCK_FLAG => Err(Error::Conflict {
            name: name.to_string(),
            detail: format!(
                "consul key {key:?} exists with flags {:#x}, not the lock flags; it is not a lock",
                pair.flags
            ),
        }),
        Some(pair) if pair.holder().is_some() => Ok(Seen::Held),
        Some(pair) => Ok(Seen::Free(pair.modify_index)),
    }
}

/// How many holders a state of the key leaves room for: 1 when free or
/// absent (or not a lock: the attempt then reports the conflict).
pub(crate) fn free_slots(key: &str, snapshot: &Snapshot) -> usize {
    match snapshot.pair(key) {
        Some(pair) if pair.flags == LOCK_FLAG && pair.holder().is_some() => 0,
        _ => 1,
    }
}

/// How one guarded take ended.
#[derive(Debug)]
pub(crate) enum Take {
    Acquired {
        token: u64,
        held: Held,
    },
    /// The key changed since it was seen.
    Changed,
    /// Free and unchanged, yet refused: a lock-delay left by an invalidated
    /// session. Nothing will change when it ends; retry after a pause.
    Delayed,
    /// Consul did not know the session any more.
    SessionGone,
}

/// Takes `key` for `session` in one transaction guarded by what was seen
/// (`Absent` or `Free`), so flags cannot change between check and take.
pub(crate) async fn take(
    http: &ConsulHttp,
    key: &str,
    session: &str,
    value: &[u8],
    seen: Seen,
) -> Result<Take> {
    let check = match seen {
        Seen::Free(modify_index) => TxnKv::new("check-index", key).index(modify_index),
        Seen::Absent | Seen::Held => TxnKv::new("check-not-exists", key),
    };
    let lock = TxnKv::new("lock", key)
        .value(value)
        .flags(LOCK_FLAG)
        .session(session);
    match http.txn(&[check, lock]).await? {
        TxnOutcome::Committed(entries) => Ok(Take::Acquired {
            token: last_entry(&entries, key)?.modify_index,
            held: Held::Mutex {
                key: key.to_string(),
            },
        }),
        // The key changed since we looked (Consul then reports the lock op
        // as failed too).
        TxnOutcome::RolledBack(failures) if failures.iter().any(|f| f.op_index == 0) => {
            Ok(Take::Changed)
        }
        TxnOutcome::RolledBack(failures)
            if failures.iter().any(|f| f.what.contains("invalid session")) =>
        {
            Ok(Take::SessionGone)
        }
        TxnOutcome::RolledBack(failures) => {
            tracing::debug!(key, reason = %describe(&failures), "lock refused; retrying");
            Ok(Take::Delayed)
        }
    }
}

/// One attempt to take `key` with `session`. After this client's own
/// release it goes straight to the guarded take (one request); otherwise it
/// reads the key first. A lost race is retried a few times.
pub(crate) async fn try_acquire(
    http: &ConsulHttp,
    released: &ReleasedKeys,
    name: &str,
    key: &str,
    session: &str,
    value: &[u8],
) -> Result<ConsulAttempt> {
    let mut known = released.take(key).map(Seen::Free);
    let mut index = 0;
    for _ in 0..RACE_RETRIES {
        let seen = match known.take() {
            Some(seen) => seen,
            None => {
                let read = http.read(key, false, ReadMode::Now, false).await?;
                index = read.index;
                classify(name, key, read.pairs.first())?
            }
        };
        if seen == Seen::Held {
            break;
        }
        match take(http, key, session, value, seen).await? {
            Take::Acquired { token, held } => return Ok(ConsulAttempt::Acquired { token, held }),
            Take::Changed => continue,
            Take::SessionGone => return Ok(ConsulAttempt::SessionGone),
            Take::Delayed => {
                return Ok(ConsulAttempt::Busy(ChangeMarker {
                    version: index,
                    retry_after: Some(LOCK_DELAY_RETRY),
                }))
            }
        }
    }
    Ok(ConsulAttempt::Busy(ChangeMarker {
        version: index,
        retry_after: None,
    }))
}

/// Releases `key` held by `session`, keeping its new index for the next
/// acquire. Fails with [`Error::Lost`] when the session no longer holds it.
pub(crate) async fn release(
    http: &ConsulHttp,
    released: &ReleasedKeys,
    name: &str,
    key: &str,
    session: &str,
    value: &[u8],
) -> Result<()> {
    let unlock = TxnKv::new("unlock", key)
        .value(value)
        .flags(LOCK_FLAG)
        .session(session);
    match http.txn(&[unlock]).await? {
        TxnOutcome::Committed(entries) => {
            if let Ok(kv) = last_entry(&entries, key) {
                released.put(key, kv.modify_index);
            }
            Ok(())
        }
        TxnOutcome::RolledBack(failures) => Err(Error::Lost {
            name: name.to_string(),
            reason: format!(
                "consul key {key:?} was no longer held by this session: {}",
                describe(&failures)
            ),
        }),
    }
}

/// Why a lease on `key` held by `session` is gone in `snapshot`, if it is.
pub(crate) fn lost(key: &str, session: &str, snapshot: &Snapshot) -> Option<String> {
    match snapshot.pair(key) {
        None => Some(format!("consul key {key:?} was deleted")),
        Some(pair) if pair.holder() != Some(session) => Some(format!(
            "consul key {key:?} is no longer held by this client's session"
        )),
        Some(_) => None,
    }
}

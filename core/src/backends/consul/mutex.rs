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

use tokio::time::Instant;

use super::http::{describe, last_entry, ConsulHttp, ReadMode, TxnKv, TxnOutcome};
use super::{ConsulAttempt, Held};
use crate::backend::ChangeMarker;
use crate::error::{Error, Result};

/// `api.LockFlagValue`: marks a key as a lock.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// How many times a lost index race is retried before waiting instead.
const RACE_RETRIES: usize = 5;
/// Pause before retrying a key held back by a lock-delay.
const LOCK_DELAY_RETRY: Duration = Duration::from_millis(500);

/// Keys this client released, with their index right after the release.
#[derive(Default)]
pub(crate) struct ReleasedKeys(Mutex<HashMap<String, u64>>);

impl ReleasedKeys {
    fn take(&self, key: &str) -> Option<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    fn put(&self, key: &str, index: u64) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: this is an optimisation, not state.
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(key.to_string(), index);
    }
}

/// One attempt to take `key` with `session`.
pub(crate) async fn try_acquire(
    http: &ConsulHttp,
    released: &ReleasedKeys,
    name: &str,
    key: &str,
    session: &str,
    value: &[u8],
) -> Result<ConsulAttempt> {
    let mut known_index = released.take(key);
    for _ in 0..RACE_RETRIES {
        let (check, index) = match known_index.take() {
            Some(modify_index) => (TxnKv::new("check-index", key).index(modify_index), 0),
            None => {
                let read = http.read(key, false, ReadMode::Now, false).await?;
                match read.pairs.first() {
                    Some(pair) if pair.flags != LOCK_FLAG => {
                        return Err(Error::Conflict {
                            name: name.to_string(),
                            detail: format!(
                                "consul key {key:?} exists with flags {:#x}, not the lock flags; it is not a lock",
                                pair.flags
                            ),
                        })
                    }
                    Some(pair) if pair.holder().is_some() => {
                        return Ok(ConsulAttempt::Busy(ChangeMarker {
                            version: read.index,
                            retry_after: None,
                        }))
                    }
                    Some(pair) => (
                        TxnKv::new("check-index", key).index(pair.modify_index),
                        read.index,
                    ),
                    None => (TxnKv::new("check-not-exists", key), read.index),
                }
            }
        };
        let take = TxnKv::new("lock", key)
            .value(value)
            .flags(LOCK_FLAG)
            .session(session);
        match http.txn(&[check, take]).await? {
            TxnOutcome::Committed(entries) => {
                let token = last_entry(&entries, key)?.modify_index;
                return Ok(ConsulAttempt::Acquired {
                    token,
                    held: Held::Mutex {
                        key: key.to_string(),
                    },
                });
            }
            TxnOutcome::RolledBack(failures) => {
                if failures.iter().any(|f| f.op_index == 0) {
                    // The key changed since we looked (Consul then reports
                    // the lock op as failed too): look again.
                    continue;
                }
                if failures.iter().any(|f| f.what.contains("invalid session")) {
                    return Ok(ConsulAttempt::SessionGone);
                }
                // The key was free and unchanged, yet the lock was refused:
                // a lock-delay left by an invalidated session. Nothing will
                // change when it ends, so retry after a short pause.
                tracing::debug!(key, reason = %describe(&failures), "lock refused; retrying");
                return Ok(ConsulAttempt::Busy(ChangeMarker {
                    version: index,
                    retry_after: Some(LOCK_DELAY_RETRY),
                }));
            }
        }
    }
    Ok(ConsulAttempt::Busy(ChangeMarker::default()))
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

/// Resolves once `key` is not held by `session` any more, watching from
/// index `since`.
pub(crate) async fn watch(http: &ConsulHttp, key: &str, session: &str, since: u64) -> String {
    super::watch_loop(http, key, false, since, |read| match read.pairs.first() {
        None => Some(format!("consul key {key:?} was deleted")),
        Some(pair) if pair.holder() != Some(session) => Some(format!(
            "consul key {key:?} is no longer held by this client's session"
        )),
        Some(_) => None,
    })
    .await
}

/// Waits until `key` changes past `marker`, or `until`.
pub(crate) async fn wait_for_change(
    http: &ConsulHttp,
    released: &ReleasedKeys,
    key: &str,
    marker: ChangeMarker,
    until: Option<Instant>,
) -> Result<()> {
    let mut version = marker.version;
    loop {
        let mode = ReadMode::Blocking {
            index: version,
            until,
        };
        let read = http.read(key, false, mode, false).await?;
        let timed_out = until.is_some_and(|u| Instant::now() >= u);
        if version == 0 || timed_out {
            return Ok(());
        }
        if read.index == version {
            continue; // Consul's own wait ended with nothing new
        }
        match read.pairs.first() {
            // Taken by the next holder: nothing to try, keep waiting.
            Some(pair) if pair.flags == LOCK_FLAG && pair.holder().is_some() => {
                version = read.index;
            }
            // Free: the next attempt goes straight to the guarded take.
            Some(pair) if pair.flags == LOCK_FLAG => {
                released.put(key, pair.modify_index);
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

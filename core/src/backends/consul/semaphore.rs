//! The semaphore recipe, compatible with HashiCorp's `api.Semaphore` and
//! `consul lock -n N`: under prefix `P`, each contender holds `P/<session>`
//! with its session, and `P/.lock` (no session) holds
//! `{"Limit": N, "Holders": {"<session>": true, …}}`, changed only by
//! check-and-set. Holders whose contender key is gone are dead and pruned.
//! The fencing token is `P/.lock`'s `ModifyIndex` after the check-and-set
//! that admitted the holder.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::http::{last_entry, ConsulHttp, KvRead, ReadMode, TxnKv, TxnOutcome};
use super::{ConsulAttempt, Held};
use crate::backend::ChangeMarker;
use crate::error::{Error, Result};

/// `api.SemaphoreFlagValue`: marks the keys of a semaphore.
pub const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;

/// How many times a lost check-and-set race is retried before waiting.
const RACE_RETRIES: u32 = 8;
/// How many times a release retries a lost check-and-set race: releases must
/// get through however busy the semaphore is.
const RELEASE_RETRIES: u32 = 64;

/// The body of `P/.lock`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LockBody {
    #[serde(rename = "Limit")]
    limit: u32,
    /// A set, stored as a map to `true`; never `null` when written.
    #[serde(rename = "Holders", default, deserialize_with = "null_as_empty")]
    holders: BTreeMap<String, bool>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, bool>, D::Error> {
    Ok(Option::<BTreeMap<String, bool>>::deserialize(d)?.unwrap_or_default())
}

/// The keys of semaphore `prefix`.
pub(crate) struct Keys {
    pub prefix: String,
    pub lock: String,
    pub contender: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, session: &str) -> Self {
        Keys {
            prefix: format!("{prefix}/"),
            lock: format!("{prefix}/.lock"),
            contender: format!("{prefix}/{session}"),
        }
    }
}

/// What a recursive read of the prefix says.
struct State {
    /// `P/.lock`'s index, when it exists.
    lock_index: Option<u64>,
    body: LockBody,
    /// Sessions that hold a contender key.
    alive: HashSet<String>,
}

fn read_state(name: &str, keys: &Keys, read: &KvRead) -> Result<State> {
    let mut state = State {
        lock_index: None,
        body: LockBody::default(),
        alive: HashSet::new(),
    };
    for pair in &read.pairs {
        if pair.key == keys.lock {
            if pair.flags != SEMAPHORE_FLAG {
                return Err(conflict(
                    name,
                    &pair.key,
                    format!("flags {:#x}", pair.flags),
                ));
            }
            let bytes = pair.bytes();
            if !bytes.is_empty() {
                state.body = serde_json::from_slice(&bytes).map_err(|e| {
                    conflict(
                        name,
                        &pair.key,
                        format!("a body that is not a semaphore ({e})"),
                    )
                })?;
            }
            state.lock_index = Some(pair.modify_index);
        } else if let Some(session) = pair.holder() {
            state.alive.insert(session.to_string());
        }
    }
    let alive = &state.alive;
    state
        .body
        .holders
        .retain(|holder, _| alive.contains(holder));
    Ok(state)
}

/// A semaphore's limit and live holders as (session, value).
pub(crate) struct Holders {
    pub limit: u32,
    pub holders: Vec<(String, Vec<u8>)>,
}

/// The limit and live holders of semaphore `prefix`, from a recursive read
/// of `prefix/`; `None` when it has no `.lock` key.
pub(crate) fn holders(name: &str, prefix: &str, read: &KvRead) -> Result<Option<Holders>> {
    let keys = Keys::new(prefix, "");
    let state = read_state(name, &keys, read)?;
    if state.lock_index.is_none() {
        return Ok(None);
    }
    let holders = state
        .body
        .holders
        .keys()
        .map(|session| {
            let value = read
                .pairs
                .iter()
                .find(|p| p.key == format!("{}{session}", keys.prefix))
                .map(|p| p.bytes())
                .unwrap_or_default();
            (session.clone(), value)
        })
        .collect();
    Ok(Some(Holders {
        limit: state.body.limit,
        holders,
    }))
}

fn conflict(name: &str, key: &str, what: String) -> Error {
    Error::Conflict {
        name: name.to_string(),
        detail: format!("consul key {key:?} has {what}; it is not a semaphore's .lock key"),
    }
}

/// One attempt to take a slot of semaphore `prefix` with `session`.
pub(crate) async fn try_acquire(
    http: &ConsulHttp,
    name: &str,
    prefix: &str,
    session: &str,
    limit: u32,
    value: &[u8],
) -> Result<ConsulAttempt> {
    let keys = Keys::new(prefix, session);
    if !http
        .acquire_key(&keys.contender, session, SEMAPHORE_FLAG, value)
        .await?
    {
        return Ok(ConsulAttempt::SessionGone);
    }
    let attempt = claim_slot(http, name, &keys, session, limit).await;
    if !matches!(attempt, Ok(ConsulAttempt::Acquired { .. })) {
        // Not a holder: leave no contender key behind.
        let _ = http.txn(&[TxnKv::new("delete", &keys.contender)]).await;
    }
    attempt
}

async fn claim_slot(
    http: &ConsulHttp,
    name: &str,
    keys: &Keys,
    session: &str,
    limit: u32,
) -> Result<ConsulAttempt> {
    let mut index = 0;
    for attempt in 0..RACE_RETRIES {
        let read = http.read(&keys.prefix, true, ReadMode::Now, false).await?;
        index = read.index;
        let mut state = read_state(name, keys, &read)?;
        if state.lock_index.is_some() && !state.body.holders.is_empty() && state.body.limit != limit
        {
            return Err(Error::LimitMismatch {
                name: name.to_string(),
                requested: limit,
                existing: Some(state.body.limit),
            });
        }
        if state.body.holders.len() >= limit as usize {
            return Ok(ConsulAttempt::Busy(ChangeMarker {
                version: read.index,
                retry_after: None,
            }));
        }
        state.body.limit = limit;
        state.body.holders.insert(session.to_string(), true);
        let body = serde_json::to_vec(&state.body).expect("a semaphore body serializes");
        let cas = TxnKv::new("cas", &keys.lock)
            .value(&body)
            .flags(SEMAPHORE_FLAG)
            .index(state.lock_index.unwrap_or(0));
        if let TxnOutcome::Committed(entries) = http.txn(&[cas]).await? {
            let token = last_entry(&entries, &keys.lock)?.modify_index;
            return Ok(ConsulAttempt::Acquired {
                token,
                held: Held::Semaphore {
                    prefix: keys.prefix.trim_end_matches('/').to_string(),
                },
            });
        }
        // Another contender changed .lock first: read again, out of step.
        crate::backends::retry::race_backoff(attempt).await;
    }
    Ok(ConsulAttempt::Busy(ChangeMarker {
        version: index,
        retry_after: None,
    }))
}

/// Gives `session`'s slot back and deletes its contender key, atomically.
pub(crate) async fn release(
    http: &ConsulHttp,
    name: &str,
    prefix: &str,
    session: &str,
) -> Result<()> {
    let keys = Keys::new(prefix, session);
    for attempt in 0..RELEASE_RETRIES {
        let read = http.read(&keys.prefix, true, ReadMode::Now, true).await?;
        let mut state = read_state(name, &keys, &read)?;
        if state.body.holders.remove(session).is_none() {
            let _ = http.txn(&[TxnKv::new("delete", &keys.contender)]).await;
            return Err(Error::Lost {
                name: name.to_string(),
                reason: format!(
                    "this client's session was no longer a holder of consul semaphore {prefix:?}"
                ),
            });
        }
        let body = serde_json::to_vec(&state.body).expect("a semaphore body serializes");
        let ops = [
            TxnKv::new("cas", &keys.lock)
                .value(&body)
                .flags(SEMAPHORE_FLAG)
                .index(state.lock_index.unwrap_or(0)),
            TxnKv::new("delete", &keys.contender),
        ];
        if let TxnOutcome::Committed(_) = http.txn(&ops).await? {
            return Ok(());
        }
        crate::backends::retry::race_backoff(attempt).await;
    }
    Err(Error::Connection(format!(
        "could not update consul semaphore {prefix:?}: too much contention; retry"
    )))
}

/// Resolves once `session` is no longer a live holder of semaphore `prefix`,
/// watching from index `since`.
pub(crate) async fn watch(
    http: &ConsulHttp,
    name: &str,
    prefix: &str,
    session: &str,
    since: u64,
) -> String {
    let keys = Keys::new(prefix, session);
    super::watch_loop(http, &keys.prefix, true, since, |read| {
        match read_state(name, &keys, read) {
            Ok(state) if state.body.holders.contains_key(session) => None,
            Ok(_) => Some(format!(
                "this client's session is no longer a holder of consul semaphore {prefix:?}"
            )),
            Err(error) => Some(error.to_string()),
        }
    })
    .await
}

/// Waits until anything under `prefix` changes past `marker`, or `until`.
pub(crate) async fn wait_for_change(
    http: &ConsulHttp,
    prefix: &str,
    marker: ChangeMarker,
    until: Option<Instant>,
) -> Result<()> {
    super::wait_past(http, &format!("{prefix}/"), true, marker, until).await
}

//! The semaphore recipe, compatible with HashiCorp's `api.Semaphore` and
//! `consul lock -n N`: under prefix `P`, each contender holds `P/<session>`
//! with its session, and `P/.lock` (no session) holds
//! `{"Limit": N, "Holders": {"<session>": true, …}}`, changed only by
//! check-and-set. Holders whose contender key is gone are dead and pruned.
//! The fencing token is `P/.lock`'s `ModifyIndex` after the check-and-set
//! that admitted the holder.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::http::{last_entry, ConsulHttp, KvPair, KvRead, ReadMode, TxnKv, TxnOutcome};
use super::topics::Snapshot;
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

fn read_state(name: &str, keys: &Keys, pairs: &[KvPair]) -> Result<State> {
    let mut state = State {
        lock_index: None,
        body: LockBody::default(),
        alive: HashSet::new(),
    };
    for pair in pairs {
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
    let state = read_state(name, &keys, &read.pairs)?;
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

/// Takes the contender key `prefix/<session>` for `session`: a semaphore
/// waiter keeps it for its whole acquire call, as HashiCorp's recipe does.
/// False when Consul no longer knows the session.
pub(crate) async fn enter(
    http: &ConsulHttp,
    keys: &Keys,
    session: &str,
    value: &[u8],
) -> Result<bool> {
    http.acquire_key(&keys.contender, session, SEMAPHORE_FLAG, value)
        .await
}

/// Deletes the contender key of a waiter that did not become a holder.
pub(crate) async fn leave(http: &ConsulHttp, keys: &Keys) {
    if let Err(error) = http.txn(&[TxnKv::new("delete", &keys.contender)]).await {
        tracing::debug!(%error, key = keys.contender, "deleting a consul contender key failed; its session's end removes it");
    }
}

/// How a claim on one state ended.
#[derive(Debug)]
pub(crate) enum Claim {
    Acquired {
        token: u64,
        held: Held,
    },
    /// Every slot was taken in that state.
    Full,
    /// Another contender changed `.lock` first.
    Raced,
}

/// How many slots `pairs` (a read of the prefix) leave for a contender
/// asking for `limit`.
pub(crate) fn free_slots(keys: &Keys, limit: u32, pairs: &[KvPair]) -> usize {
    match read_state("", keys, pairs) {
        Ok(state) => {
            let limit = if state.body.holders.is_empty() {
                limit
            } else {
                state.body.limit
            };
            (limit as usize).saturating_sub(state.body.holders.len())
        }
        // Not a semaphore: let the attempt report the conflict.
        Err(_) => 1,
    }
}

/// Claims a slot for `session` by one check-and-set of `.lock` against the
/// state in `pairs` (a read of the prefix): live holders plus this one.
pub(crate) async fn claim(
    http: &ConsulHttp,
    name: &str,
    keys: &Keys,
    session: &str,
    limit: u32,
    pairs: &[KvPair],
) -> Result<Claim> {
    let mut state = read_state(name, keys, pairs)?;
    if state.lock_index.is_some() && !state.body.holders.is_empty() && state.body.limit != limit {
        return Err(Error::LimitMismatch {
            name: name.to_string(),
            requested: limit,
            existing: Some(state.body.limit),
        });
    }
    if state.body.holders.len() >= limit as usize {
        return Ok(Claim::Full);
    }
    state.body.limit = limit;
    state.body.holders.insert(session.to_string(), true);
    let body = serde_json::to_vec(&state.body).expect("a semaphore body serializes");
    let cas = TxnKv::new("cas", &keys.lock)
        .value(&body)
        .flags(SEMAPHORE_FLAG)
        .index(state.lock_index.unwrap_or(0));
    match http.txn(&[cas]).await? {
        TxnOutcome::Committed(entries) => Ok(Claim::Acquired {
            token: last_entry(&entries, &keys.lock)?.modify_index,
            held: Held::Semaphore {
                prefix: keys.prefix.trim_end_matches('/').to_string(),
            },
        }),
        TxnOutcome::RolledBack(_) => Ok(Claim::Raced),
    }
}

/// The first attempt of an acquire call: reads the prefix and claims,
/// retrying a lost race a few times, out of step with the other contenders.
/// Busy carries the index of the last read.
pub(crate) async fn try_claim(
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
        match claim(http, name, keys, session, limit, &read.pairs).await? {
            Claim::Acquired { token, held } => return Ok(ConsulAttempt::Acquired { token, held }),
            Claim::Full => break,
            Claim::Raced => crate::backends::retry::race_backoff(attempt).await,
        }
    }
    Ok(ConsulAttempt::Busy(ChangeMarker {
        version: index,
        retry_after: None,
    }))
}

/// One attempt to take a slot of semaphore `prefix` with `session`, leaving
/// no contender key behind unless it became a holder.
pub(crate) async fn try_acquire(
    http: &ConsulHttp,
    name: &str,
    prefix: &str,
    session: &str,
    limit: u32,
    value: &[u8],
) -> Result<ConsulAttempt> {
    let keys = Keys::new(prefix, session);
    if !enter(http, &keys, session, value).await? {
        return Ok(ConsulAttempt::SessionGone);
    }
    let attempt = try_claim(http, name, &keys, session, limit).await;
    if !matches!(attempt, Ok(ConsulAttempt::Acquired { .. })) {
        leave(http, &keys).await;
    }
    attempt
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
        let mut state = read_state(name, &keys, &read.pairs)?;
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

/// Why `session`'s slot of the semaphore with `keys` is gone in `snapshot`
/// (a read of the prefix), if it is.
pub(crate) fn lost(name: &str, keys: &Keys, session: &str, snapshot: &Snapshot) -> Option<String> {
    match read_state(name, keys, &snapshot.pairs) {
        Ok(state) if state.body.holders.contains_key(session) => None,
        Ok(_) => Some(format!(
            "this client's session is no longer a holder of consul semaphore {:?}",
            keys.prefix.trim_end_matches('/')
        )),
        Err(error) => Some(error.to_string()),
    }
}

/// The holders `.lock`'s body lists (dead ones included), or `None` when
/// `pair` is not a semaphore's `.lock` key.
pub(crate) fn listed_holders(pair: &KvPair) -> Option<Vec<String>> {
    if pair.flags != SEMAPHORE_FLAG || !pair.key.ends_with("/.lock") {
        return None;
    }
    let bytes = pair.bytes();
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let body: LockBody = serde_json::from_slice(&bytes).ok()?;
    Some(body.holders.into_keys().collect())
}

//! Operator views on Consul: who holds a lock, which locks are held, and
//! acting on another process's lease by its session id (the holder id of a
//! Consul lease). Sessions do not expose their remaining time, so holders'
//! expiry is unknown here.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;

use super::http::{ConsulHttp, KvPair, ReadMode};
use super::mutex::{self, ReleasedKeys, LOCK_FLAG};
use super::semaphore::{self, SEMAPHORE_FLAG};
use super::session::parse_session_ttl;
use super::ConsulBackend;
use crate::backend::{HolderOps, Inspect};
use crate::error::{Error, Result};
use crate::model::{HolderStatus, LockStatus};

#[async_trait]
impl Inspect for ConsulBackend {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        status(&self.http, name, &self.key(name)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        list(&self.http, &self.http.config().prefix, prefix).await
    }

    async fn force_release(&self, name: &str) -> Result<u32> {
        force_release(&self.http, &self.released, name, &self.key(name), None).await
    }
}

#[async_trait]
impl HolderOps for ConsulBackend {
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool> {
        let key = self.key(name);
        let released = force_release(&self.http, &self.released, name, &key, Some(holder));
        Ok(released.await? > 0)
    }

    /// Renews the holder's session, with the session's own TTL.
    async fn renew_holder(&self, name: &str, holder: &str, _ttl: Duration) -> Result<Duration> {
        renew_holder(&self.http, name, &self.key(name), holder).await
    }
}

/// Who holds the lock at `key` (mutex) or under `key/` (semaphore).
async fn status(http: &ConsulHttp, name: &str, key: &str) -> Result<LockStatus> {
    let read = http.read(key, false, ReadMode::Now, true).await?;
    if let Some(pair) = read.pairs.first().filter(|p| p.flags == LOCK_FLAG) {
        let Some(session) = pair.holder() else {
            return Ok(LockStatus::free(name));
        };
        return Ok(LockStatus {
            name: name.to_string(),
            limit: Some(1),
            holders: vec![HolderStatus {
                holder: session.to_string(),
                value: String::from_utf8_lossy(&pair.bytes()).into_owned(),
                fencing_token: Some(pair.modify_index),
                expires_in: None,
            }],
        });
    }
    let read = http
        .read(&format!("{key}/"), true, ReadMode::Now, true)
        .await?;
    match semaphore::holders(name, key, &read)? {
        Some(semaphore) if !semaphore.holders.is_empty() => Ok(LockStatus {
            name: name.to_string(),
            limit: Some(semaphore.limit),
            holders: semaphore
                .holders
                .into_iter()
                .map(|(session, value)| HolderStatus {
                    holder: session,
                    value: String::from_utf8_lossy(&value).into_owned(),
                    fencing_token: None,
                    expires_in: None,
                })
                .collect(),
        }),
        _ => Ok(LockStatus::free(name)),
    }
}

/// The held lock names under `root + prefix`, without `root`.
async fn list(http: &ConsulHttp, root: &str, prefix: &str) -> Result<Vec<String>> {
    let read = http
        .read(&format!("{root}{prefix}"), true, ReadMode::Now, true)
        .await?;
    Ok(held_names(root, prefix, &read.pairs))
}

/// The held lock names in `pairs` (a recursive read of `root + prefix`),
/// without `root`, sorted.
pub(crate) fn held_names(root: &str, prefix: &str, pairs: &[KvPair]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for pair in pairs {
        let Some(path) = pair.key.strip_prefix(root) else {
            continue;
        };
        if pair.flags == LOCK_FLAG && pair.holder().is_some() {
            names.insert(path.to_string());
        } else if pair.flags == SEMAPHORE_FLAG && pair.holder().is_some() {
            // A contender key `NAME/<session>`: the semaphore's status says
            // whether it was admitted; a live contender is enough to list it.
            if let Some((semaphore_name, _)) = path.rsplit_once('/') {
                if semaphore_name.starts_with(prefix) {
                    names.insert(semaphore_name.to_string());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Releases the leases on `name` (only `holder`'s when given); how many.
async fn force_release(
    http: &ConsulHttp,
    released: &ReleasedKeys,
    name: &str,
    key: &str,
    holder: Option<&str>,
) -> Result<u32> {
    let current = status(http, name, key).await?;
    let mut count = 0;
    for h in current.holders {
        if holder.is_some_and(|wanted| wanted != h.holder) {
            continue;
        }
        let result = if current.limit == Some(1) {
            mutex::release(http, released, name, key, &h.holder, h.value.as_bytes()).await
        } else {
            semaphore::release(http, name, key, &h.holder).await
        };
        match result {
            Ok(()) => count += 1,
            // It left on its own meanwhile.
            Err(Error::Lost { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(count)
}

/// Renews session `holder` after checking it holds `name`; the session's TTL.
async fn renew_holder(http: &ConsulHttp, name: &str, key: &str, holder: &str) -> Result<Duration> {
    let not_held = || Error::NotHeld {
        name: name.to_string(),
        reason: format!("consul session {holder:?} does not hold it"),
    };
    let current = status(http, name, key).await?;
    if !current.holders.iter().any(|h| h.holder == holder) {
        return Err(not_held());
    }
    let reply = http
        .put_json(&format!("/v1/session/renew/{holder}"), None)
        .await?
        .ok_or_else(not_held)?;
    parse_session_ttl(&reply).ok_or_else(|| {
        Error::Backend(format!(
            "consul's session renewal reply has no TTL: {reply}"
        ))
    })
}

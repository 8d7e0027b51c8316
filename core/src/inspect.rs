//! Operator views of locks held by any client: who holds a lock
//! ([`LockStatus`]), which locks are held ([`crate::Client::list`]), and
//! operations on another process's lease by its holder id (renew, release,
//! force release) — what the `polylock` CLI and the name registry use.

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::{validate_name, validate_ttl};
use crate::runtime;

/// The holders of one lock, as the backend sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The lock's name.
    pub name: String,
    /// The limit the lock is in use with (1 for a mutex); `None` when nobody holds it.
    pub limit: Option<u32>,
    /// The live holders, in no particular order.
    pub holders: Vec<HolderStatus>,
}

impl LockStatus {
    /// The status of a lock nobody holds.
    pub fn free(name: &str) -> Self {
        LockStatus {
            name: name.to_string(),
            limit: None,
            holders: Vec::new(),
        }
    }

    /// True when nobody holds the lock.
    pub fn is_free(&self) -> bool {
        self.holders.is_empty()
    }
}

/// One holder of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderStatus {
    /// The holder id ([`crate::Lease::holder`]): Consul session, ledger id, …
    pub holder: String,
    /// The holder value stored with the lease.
    pub value: String,
    /// The grant's fencing token, where the backend can tell it.
    pub fencing_token: Option<u64>,
    /// Time left before the backend frees the lease unless it is renewed,
    /// where the backend can tell it (Consul cannot: sessions do not expose it).
    pub expires_in: Option<Duration>,
}

/// Checks a name prefix for [`Client::list`]: empty, or a name possibly
/// ending with `/`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" => Ok(()),
        stem => validate_name(stem),
    }
}

impl Client {
    /// Who holds lock `name` now, by any client.
    pub async fn status(&self, name: &str) -> Result<LockStatus> {
        validate_name(name)?;
        let backend = self.inner.backend.clone();
        let name = name.to_string();
        runtime::run(async move { backend.status(&name).await }).await?
    }

    /// The names starting with `prefix` that somebody holds now, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let backend = self.inner.backend.clone();
        let prefix = prefix.to_string();
        runtime::run(async move { backend.list(&prefix).await }).await?
    }

    /// Takes lock `name` away from every holder (an operator's force
    /// release); returns how many leases were released. Holders learn it as
    /// a lost lease, and fencing tokens keep rising for the next holder.
    pub async fn force_release(&self, name: &str) -> Result<u32> {
        validate_name(name)?;
        let backend = self.inner.backend.clone();
        let name = name.to_string();
        runtime::run(async move { backend.force_release(&name, None).await }).await?
    }

    /// Releases `holder`'s lease on `name`, where `holder` is a
    /// [`crate::Lease::holder`] id, possibly from another process (the CLI's
    /// `release`). Fails with [`Error::NotHeld`] when `holder` does not hold it.
    pub async fn release_holder(&self, name: &str, holder: &str) -> Result<()> {
        validate_name(name)?;
        let backend = self.inner.backend.clone();
        let (name, holder) = (name.to_string(), holder.to_string());
        runtime::run(async move {
            match backend.force_release(&name, Some(&holder)).await? {
                0 => Err(Error::NotHeld {
                    name,
                    reason: format!("{holder:?} does not hold it"),
                }),
                _ => Ok(()),
            }
        })
        .await?
    }

    /// Renews `holder`'s lease on `name` for `ttl` (Consul renews the
    /// holder's session with the session's own TTL); returns the TTL granted.
    pub async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        validate_name(name)?;
        validate_ttl(ttl)?;
        let backend = self.inner.backend.clone();
        let (name, holder) = (name.to_string(), holder.to_string());
        runtime::run(async move { backend.renew_holder(&name, &holder, ttl).await }).await?
    }
}

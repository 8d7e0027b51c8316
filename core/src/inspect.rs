//! Operator views of locks held by any client: who holds a lock
//! ([`LockStatus`]), which locks are held ([`crate::Client::list`]), and
//! operations on another process's lease by its holder id (renew, release,
//! force release) — what the `polylock` CLI and the name registry use.
//! Each call goes to the part of the backend that serves it
//! ([`crate::backend::Inspect`], [`crate::backend::HolderOps`]); a backend
//! that does not offer it answers with an invalid-argument error naming the
//! backend and the operation.

use std::time::Duration;

pub use crate::model::{HolderStatus, LockStatus};

use crate::backend::{Backend, HolderOps, Inspect};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::{validate_name, validate_ttl};
use crate::runtime;

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
        runtime::run(async move { views(&*backend, "lock status")?.status(&name).await }).await?
    }

    /// The names starting with `prefix` that somebody holds now, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let backend = self.inner.backend.clone();
        let prefix = prefix.to_string();
        runtime::run(async move { views(&*backend, "listing locks")?.list(&prefix).await }).await?
    }

    /// Takes lock `name` away from every holder (an operator's force
    /// release); returns how many leases were released. Holders learn it as
    /// a lost lease, and fencing tokens keep rising for the next holder.
    pub async fn force_release(&self, name: &str) -> Result<u32> {
        validate_name(name)?;
        let backend = self.inner.backend.clone();
        let name = name.to_string();
        runtime::run(async move {
            let what = "taking a lock from all its holders (it cannot list them; \
                        release one lease by its holder id)";
            views(&*backend, what)?.force_release(&name).await
        })
        .await?
    }

    /// Releases `holder`'s lease on `name`, where `holder` is a
    /// [`crate::Lease::holder`] id, possibly from another process (the CLI's
    /// `release`). Fails with [`Error::NotHeld`] when `holder` does not hold it.
    pub async fn release_holder(&self, name: &str, holder: &str) -> Result<()> {
        validate_name(name)?;
        let backend = self.inner.backend.clone();
        let (name, holder) = (name.to_string(), holder.to_string());
        runtime::run(async move {
            let ops = holder_ops(&*backend, "releasing another process's lease")?;
            if ops.release_holder(&name, &holder).await? {
                Ok(())
            } else {
                Err(Error::NotHeld {
                    name,
                    reason: format!("{holder:?} does not hold it"),
                })
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
        runtime::run(async move {
            let ops = holder_ops(&*backend, "renewing another process's lease")?;
            ops.renew_holder(&name, &holder, ttl).await
        })
        .await?
    }
}

/// The backend's operator views, or the error naming `what` it cannot do.
fn views<'a>(backend: &'a dyn Backend, what: &str) -> Result<&'a dyn Inspect> {
    backend.inspect().ok_or_else(|| backend.unsupported(what))
}

/// The backend's calls by holder id, or the error naming `what` it cannot do.
fn holder_ops<'a>(backend: &'a dyn Backend, what: &str) -> Result<&'a dyn HolderOps> {
    backend
        .holder_ops()
        .ok_or_else(|| backend.unsupported(what))
}

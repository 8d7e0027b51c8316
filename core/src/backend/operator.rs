//! The operator parts a backend offers or not: views of every client's
//! locks ([`Inspect`]: capability `inspection`) and calls on one lease by
//! its holder id ([`HolderOps`]). What the `polylock` CLI, the name registry
//! and [`crate::Client::status`] and its siblings use.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::LockStatus;

/// Who holds which lock, by any client, and taking a lock from all its
/// holders. A backend offers it ([`super::Backend::inspect`]) when it can
/// tell a lock's holders; [`crate::Capabilities::inspection`] says whether
/// it does.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// Who holds `name` now (any client).
    async fn status(&self, name: &str) -> Result<LockStatus>;

    /// The names starting with `prefix` that somebody holds now, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Takes the leases on `name` away from every holder, as an operator
    /// would; returns how many were released. The holders learn it as a
    /// lost lease.
    async fn force_release(&self, name: &str) -> Result<u32>;
}

/// Release and renewal of one lease by its holder id
/// ([`crate::Lease::holder`]), possibly another process's, without
/// knowing the lock's other holders (the CLI's `release` and `renew`). LDLM
/// offers it without [`Inspect`].
#[async_trait]
pub trait HolderOps: Send + Sync {
    /// Takes `holder`'s lease on `name` away, as an operator would; false
    /// when `holder` does not hold it. The holder learns it as a lost lease.
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool>;

    /// Renews `holder`'s lease on `name` for `ttl` (backends that renew a
    /// session may keep its own TTL); returns the TTL granted. Fails with
    /// [`crate::Error::NotHeld`] when `holder` does not hold `name`.
    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration>;
}

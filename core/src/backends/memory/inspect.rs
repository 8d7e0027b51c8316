//! Operator views on `memory://`: the store's snapshot of a lock, its held
//! names, and revoking or renewing a lease by its holder id.

use std::time::Duration;

use async_trait::async_trait;

use super::MemoryBackend;
use crate::backend::{HolderOps, Inspect};
use crate::error::{Error, Result};
use crate::model::{HolderStatus, LockStatus};

#[async_trait]
impl Inspect for MemoryBackend {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        let snapshot = self.store.snapshot(name);
        Ok(LockStatus {
            name: name.to_string(),
            limit: snapshot.limit,
            holders: snapshot
                .holders
                .into_iter()
                .map(|h| HolderStatus {
                    holder: h.holder,
                    value: h.value,
                    fencing_token: Some(h.fencing_token),
                    expires_in: Some(h.expires_in),
                })
                .collect(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.store.held_names(prefix))
    }

    async fn force_release(&self, name: &str) -> Result<u32> {
        Ok(self.revoke(name, None))
    }
}

#[async_trait]
impl HolderOps for MemoryBackend {
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool> {
        Ok(self.revoke(name, Some(holder)) > 0)
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        if self.store.renew_holder(name, holder, ttl) {
            Ok(ttl)
        } else {
            Err(Error::NotHeld {
                name: name.to_string(),
                reason: format!("{holder:?} does not hold it (released, expired or revoked)"),
            })
        }
    }
}

impl MemoryBackend {
    /// Revokes the leases on `name` (only `holder`'s when given); how many.
    fn revoke(&self, name: &str, holder: Option<&str>) -> u32 {
        let mut released = 0;
        for info in self.store.holders(name) {
            if holder.is_none_or(|h| h == info.holder) && self.store.revoke(name, &info.holder) {
                released += 1;
            }
        }
        released
    }
}

//! Operator views on MongoDB: who holds a lock (its slots' newest live
//! generations, judged on the server's clock), which locks are held (a
//! query over the collection), and acting on a lease by its holder id (its
//! generation's `_id`). A forced release inserts the generation's release
//! marker, as the holder's own release would; the holder learns it at its
//! next renewal.

use std::time::Duration;

use async_trait::async_trait;

use super::plan::Generation;
use super::MongoBackend;
use crate::backend::{HolderOps, Inspect};
use crate::error::{Error, Result};
use crate::model::{HolderStatus, LockStatus};

impl MongoBackend {
    /// The live generations of `name`'s slots, at server time now.
    async fn live(&self, name: &str) -> Result<Vec<Generation>> {
        let key = self.key(name);
        let known = |slot| self.events.known.newest(&key, slot);
        let survey = self
            .ledger
            .survey(name, 1, known, || self.clock.now_ms())
            .await?;
        let now = self.clock.now_ms();
        Ok(survey
            .newest
            .into_values()
            .filter(|g| g.is_live(now))
            .collect())
    }

    /// Releases the live leases on `name` (only `holder`'s when given),
    /// each with an end record first; how many.
    async fn release_live(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        let mut count = 0;
        for g in self.live(name).await? {
            if holder.is_some_and(|wanted| wanted != g.id) {
                continue;
            }
            // The record first, so the holder cannot miss the release.
            if !g.unit.is_empty() {
                let now = self.clock.now_ms();
                let told = self.ledger.sessions.record_end(&g.unit, &g.id, true, now);
                told.await?;
            }
            if self.release_generation(name, &g).await? {
                count += 1;
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl Inspect for MongoBackend {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        let live = self.live(name).await?;
        if live.is_empty() {
            return Ok(LockStatus::free(name));
        }
        let ids: Vec<String> = live.iter().map(|g| g.id.clone()).collect();
        let mut values = self.ledger.values(&ids).await?;
        let now = self.clock.now_ms();
        Ok(LockStatus {
            name: name.to_string(),
            limit: live.first().map(|g| g.limit),
            holders: live
                .into_iter()
                .map(|g| HolderStatus {
                    value: values.remove(&g.id).unwrap_or_default(),
                    fencing_token: u64::try_from(g.token).ok(),
                    expires_in: Some(Duration::from_millis(
                        u64::try_from(g.expires_at.saturating_sub(now)).unwrap_or(0),
                    )),
                    holder: g.id,
                })
                .collect(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.ledger.held_names(prefix, self.clock.now_ms()).await
    }

    async fn force_release(&self, name: &str) -> Result<u32> {
        self.release_live(name, None).await
    }
}

#[async_trait]
impl HolderOps for MongoBackend {
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool> {
        Ok(self.release_live(name, Some(holder)).await? > 0)
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        if !self.live(name).await?.iter().any(|g| g.id == holder) {
            return Err(Error::NotHeld {
                name: name.to_string(),
                reason: format!("{holder:?} does not hold it (released, expired or taken over)"),
            });
        }
        let expires_at = self.clock.now_ms() + ttl.as_millis() as i64;
        self.ledger.extend(holder, expires_at).await?;
        Ok(ttl)
    }
}

//! Acting on an LDLM lease by its key (the holder id), from any process:
//! `Unlock` and `Renew` with that key. LDLM cannot tell who holds a lock,
//! so it offers no operator views ([`crate::backend::Inspect`]).

use std::time::Duration;

use async_trait::async_trait;

use super::{whole_seconds, LdlmBackend};
use crate::backend::HolderOps;
use crate::error::{Error, Result};

#[async_trait]
impl HolderOps for LdlmBackend {
    async fn release_holder(&self, name: &str, key: &str) -> Result<bool> {
        let unlocked = self
            .retrying(None, |connection| async move {
                self.unlock_call(&connection, name, key).await
            })
            .await?;
        Ok(unlocked.is_ok())
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        let seconds = whole_seconds(ttl);
        self.retrying(None, |connection| async move {
            self.renew_call(&connection, name, holder, seconds).await
        })
        .await?
        .map(|()| ttl)
        .map_err(|why| Error::NotHeld {
            name: name.to_string(),
            reason: format!("{holder:?} does not hold it: {why}"),
        })
    }
}

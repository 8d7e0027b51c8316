//! Operator views and calls on PostgreSQL: who holds a lock, which names
//! are held, forced release, and release or renewal of one holder's lease.

use std::time::Duration;

use async_trait::async_trait;

use super::{ttl_ms, ttl_param, PostgresBackend};
use crate::backend::{HolderOps, Inspect};
use crate::error::{Error, Result};
use crate::model::{HolderStatus, LockStatus};

#[async_trait]
impl Inspect for PostgresBackend {
    async fn status(&self, name: &str) -> Result<LockStatus> {
        let connection = self.connection(1).await?;
        let rows = connection
            .client
            .query(&connection.status, &[&name])
            .await
            .map_err(|e| self.error(&e))?;
        let Some(first) = rows.first() else {
            return Ok(LockStatus::free(name));
        };
        let limit: i32 = first.get(3);
        Ok(LockStatus {
            name: name.to_string(),
            limit: Some(limit as u32),
            holders: rows
                .iter()
                .map(|row| {
                    let value: Vec<u8> = row.get(1);
                    let token: i64 = row.get(2);
                    let left: i64 = row.get(4);
                    HolderStatus {
                        holder: row.get(0),
                        value: String::from_utf8_lossy(&value).into_owned(),
                        fencing_token: Some(token as u64),
                        expires_in: Some(Duration::from_millis(left.max(0) as u64)),
                    }
                })
                .collect(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let connection = self.connection(1).await?;
        let rows = connection
            .client
            .query(&connection.list, &[&prefix])
            .await
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn force_release(&self, name: &str) -> Result<u32> {
        let connection = self.connection(1).await?;
        let row = connection
            .client
            .query_one(&connection.force, &[&name, &None::<String>])
            .await
            .map_err(|e| self.error(&e))?;
        Ok(row.get::<_, i32>(0) as u32)
    }
}

#[async_trait]
impl HolderOps for PostgresBackend {
    async fn release_holder(&self, name: &str, holder: &str) -> Result<bool> {
        let connection = self.connection(1).await?;
        let row = connection
            .client
            .query_one(&connection.force, &[&name, &Some(holder)])
            .await
            .map_err(|e| self.error(&e))?;
        Ok(row.get::<_, i32>(0) > 0)
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        let connection = self.connection(1).await?;
        let ms = ttl_param(ttl_ms(ttl));
        let row = connection
            .client
            .query_one(&connection.renew_holder, &[&name, &holder, &ms])
            .await
            .map_err(|e| self.error(&e))?;
        if row.get::<_, bool>(0) {
            Ok(ttl)
        } else {
            Err(Error::NotHeld {
                name: name.to_string(),
                reason: format!("{holder} does not hold it"),
            })
        }
    }
}

//! The server's clock, as this client estimates it. Lease expiry times are
//! written and judged in server milliseconds, so clients whose own clocks
//! disagree still agree on when a lease ran out. The offset is measured once
//! at connect from `hello.localTime`, halving the round trip.

use std::time::{SystemTime, UNIX_EPOCH};

use mongodb::bson::{doc, Document};
use mongodb::Database;

use super::errors;
use crate::error::Result;

/// This client's estimate of the server's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerClock {
    offset_ms: i64,
}

fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ServerClock {
    /// Asks the server for its time (`hello`); also proves the connection
    /// and the credentials. Returns the clock and the `hello` reply.
    pub(crate) async fn measure(db: &Database) -> Result<(Self, Document)> {
        let before = local_ms();
        let hello = db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(errors::map)?;
        let after = local_ms();
        let offset_ms = match hello.get_datetime("localTime") {
            Ok(server) => server.timestamp_millis() - (before + after) / 2,
            Err(_) => {
                tracing::warn!("the server reports no localTime; trusting the local clock");
                0
            }
        };
        Ok((ServerClock { offset_ms }, hello))
    }

    /// Now, in server milliseconds since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        local_ms() + self.offset_ms
    }
}

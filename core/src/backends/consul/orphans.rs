//! Keys a live session may still hold for a lease the client no longer
//! has: an acquire whose reply was lost after Consul committed it (the
//! caller saw a connection error), or a lease declared lost here (no renewal
//! proved it in time, e.g. during a leader election) whose session then
//! lived on because it renews the client's other leases. Left alone, such a
//! key stays held as long as the client runs, and nobody can take it.
//!
//! [`free_in_background`] releases it. Until then the pool does not lend
//! the session for the name ([`SessionPool::orphan`]), so no other lease of
//! this client takes the name with that session meanwhile, and whatever the
//! session holds on the name is the orphan. Each attempt renews the session
//! first: it stops when Consul no longer knows the session (which then
//! holds nothing), when the release went through, when Consul says the
//! session holds nothing there, or when the session can no longer be alive
//! (Consul then deletes its keys itself).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::http::ConsulHttp;
use super::mutex::{self, ReleasedKeys};
use super::semaphore;
use super::session::{SessionPool, SessionRenewal};
use super::Held;
use crate::error::Result;
use crate::runtime;

/// At most this many release attempts (about two minutes with the pauses).
const ATTEMPTS: u32 = 120;
/// The pause between two attempts, at most.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// What a session may still hold on one name.
pub(crate) struct Orphan {
    pub name: String,
    pub session: String,
    pub held: Held,
    /// The lock key's value (the mutex recipe's unlock writes it).
    pub value: Vec<u8>,
}

/// Releases `orphan` on polylock's runtime; the session is lent for its
/// name again after.
pub(crate) fn free_in_background(
    http: Arc<ConsulHttp>,
    sessions: Arc<SessionPool>,
    orphan: Orphan,
) {
    sessions.orphan(&orphan.session, &orphan.name);
    runtime::spawn(async move {
        free(&http, &sessions, &orphan).await;
        sessions.orphan_freed(&orphan.session, &orphan.name);
    });
}

async fn free(http: &ConsulHttp, sessions: &SessionPool, orphan: &Orphan) {
    let mut pause = Duration::from_millis(100);
    for _ in 0..ATTEMPTS {
        if !may_be_alive(sessions, &orphan.session) {
            return;
        }
        // A session Consul no longer knows holds nothing (and the pool,
        // told so by the renewal, stops lending it).
        let outcome = match sessions.renew(http, &orphan.session).await {
            Ok(SessionRenewal::Gone) => return,
            Ok(SessionRenewal::Alive(_)) => release(http, orphan).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                tracing::debug!(name = %orphan.name, "released a key a lost lease's session still held");
                return;
            }
            Err(error) if error.is_transient() => {
                tracing::debug!(%error, name = %orphan.name, "releasing a lost lease's key failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            // Lost: the session holds nothing on the name.
            Err(_) => return,
        }
    }
}

/// Whether Consul may still keep `session`.
fn may_be_alive(sessions: &SessionPool, session: &str) -> bool {
    sessions
        .invalidated_by(session)
        .is_some_and(|by| Instant::now() < by)
}

async fn release(http: &ConsulHttp, orphan: &Orphan) -> Result<()> {
    match &orphan.held {
        Held::Mutex { key } => {
            // The client's index cache is not told: the next acquire reads.
            let scratch = ReleasedKeys::default();
            mutex::release(
                http,
                &scratch,
                &orphan.name,
                key,
                &orphan.session,
                &orphan.value,
            )
            .await
        }
        Held::Semaphore { prefix } => {
            semaphore::release(http, &orphan.name, prefix, &orphan.session).await
        }
    }
}

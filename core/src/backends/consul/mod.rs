//! `consul://host:port`: locks on Consul sessions and KV, interoperable with
//! HashiCorp's own clients. A limit of 1 uses the mutex recipe
//! ([`mutex`], key = prefix + name); a larger limit uses the semaphore recipe
//! ([`semaphore`], keys under prefix + name + `/`). One TTL session per client
//! renews every lease ([`session`]). Waits and loss detection use blocking
//! queries, never fixed-period polling.

mod config;
mod http;
mod inspect;
mod mutex;
mod semaphore;
mod session;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use config::ConsulConfig;
pub use mutex::LOCK_FLAG;
pub use semaphore::SEMAPHORE_FLAG;

use self::http::{next_index, ConsulHttp, KvRead, ReadMode};
use self::mutex::ReleasedKeys;
use self::session::{SessionPool, SessionRenewal};
use crate::backend::{
    AcquireRequest, Attempt, Backend, Capabilities, ChangeMarker, Grant, LeaseEnd, RenewOutcome,
};
use crate::error::{Error, Result};
use crate::inspect::LockStatus;

/// How long a fresh lease goes unwatched. Watching is a long-poll that holds
/// an HTTP connection; leases released sooner never open one (a loss in this
/// window is still caught, by the first watch read or the next renewal).
const WATCH_GRACE: Duration = Duration::from_millis(200);
/// Pause after a failed watch read before the next; doubles up to 5 s.
const WATCH_RETRY: Duration = Duration::from_millis(200);
/// Least time between two watch reads, so a busy key cannot make a watcher spin.
const WATCH_FLOOR: Duration = Duration::from_millis(20);
/// Most leases one client loss-watches at once. Each watch is a long-poll
/// holding an HTTP/1.1 connection, and Consul refuses a client IP more than
/// `http_max_conns_per_client` (default 200) connections. Leases beyond this
/// wait for a watch slot; until they get one, their session renewals (which
/// catch an expired or destroyed session) are what detects their loss.
const MAX_WATCHES: usize = 64;

/// Which keys a grant holds.
#[derive(Debug, Clone)]
pub(crate) enum Held {
    /// The mutex key.
    Mutex { key: String },
    /// A slot of the semaphore under this prefix.
    Semaphore { prefix: String },
}

/// The result of one recipe attempt.
#[derive(Debug)]
pub(crate) enum ConsulAttempt {
    Acquired {
        token: u64,
        held: Held,
    },
    Busy(ChangeMarker),
    /// Consul did not know the session any more.
    SessionGone,
}

/// The private part of a Consul grant.
struct ConsulGrant {
    session: String,
    held: Held,
    value: Vec<u8>,
    /// The Raft index of the acquisition: watching starts from it.
    index: u64,
}

/// The `consul://` backend.
pub struct ConsulBackend {
    http: ConsulHttp,
    sessions: SessionPool,
    released: ReleasedKeys,
    /// Watch slots: see [`MAX_WATCHES`].
    watches: tokio::sync::Semaphore,
}

impl ConsulBackend {
    /// Connects and checks that the agent answers, has a leader, and knows
    /// the configured token.
    pub async fn connect(config: ConsulConfig) -> Result<Self> {
        let http = ConsulHttp::new(config)?;
        http.check().await?;
        Ok(ConsulBackend {
            http,
            sessions: SessionPool::default(),
            released: ReleasedKeys::default(),
            watches: tokio::sync::Semaphore::new(MAX_WATCHES),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.http.config().prefix)
    }
}

#[async_trait]
impl Backend for ConsulBackend {
    fn scheme(&self) -> &'static str {
        "consul"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            loss_watch: true,
            change_notifications: true,
            semaphores: true,
            shared_renewal: true,
            event_stream: false,
            inspection: true,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        let key = self.key(&request.name);
        let value = request.value.as_bytes();
        // A session can vanish between two uses; one fresh try then.
        for _ in 0..2 {
            let session = self
                .sessions
                .reserve(&self.http, &request.name, request.ttl)
                .await?;
            let attempt = if request.limit == 1 {
                mutex::try_acquire(
                    &self.http,
                    &self.released,
                    &request.name,
                    &key,
                    &session.id,
                    value,
                )
                .await
            } else {
                semaphore::try_acquire(
                    &self.http,
                    &request.name,
                    &key,
                    &session.id,
                    request.limit,
                    value,
                )
                .await
            };
            match attempt {
                Ok(ConsulAttempt::Acquired { token, held }) => {
                    return Ok(Attempt::Acquired(Grant {
                        name: request.name.clone(),
                        limit: request.limit,
                        holder: session.id.clone(),
                        fencing_token: Some(token),
                        ttl: session.ttl,
                        proven_until: Some(session.alive_until),
                        renewal_unit: Some(session.id.clone()),
                        detail: Arc::new(ConsulGrant {
                            session: session.id,
                            held,
                            value: value.to_vec(),
                            index: token,
                        }),
                    }))
                }
                Ok(ConsulAttempt::Busy(marker)) => {
                    self.sessions.unreserve(&session.id, &request.name);
                    return Ok(Attempt::Busy(marker));
                }
                Ok(ConsulAttempt::SessionGone) => {
                    self.sessions.forget_session(&session.id);
                }
                Err(error) => {
                    self.sessions.unreserve(&session.id, &request.name);
                    return Err(error);
                }
            }
        }
        Err(Error::Backend(
            "consul invalidated two new sessions in a row; is session_ttl_min above the lock TTL?"
                .into(),
        ))
    }

    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        if let Some(pause) = marker.retry_after {
            let wake = Instant::now() + pause;
            tokio::time::sleep_until(until.map_or(wake, |u| u.min(wake))).await;
            return Ok(());
        }
        let key = self.key(&request.name);
        if request.limit == 1 {
            mutex::wait_for_change(&self.http, &self.released, &key, marker, until).await
        } else {
            semaphore::wait_for_change(&self.http, &key, marker, until).await
        }
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        let mut outcomes = Vec::with_capacity(grants.len());
        let mut renewed: Vec<(String, RenewOutcome)> = Vec::new();
        for grant in grants {
            let session = &grant.detail::<ConsulGrant>().session;
            let outcome = match renewed.iter().find(|(s, _)| s == session) {
                Some((_, outcome)) => outcome.clone(),
                None => {
                    let outcome = match self.sessions.renew(&self.http, session).await? {
                        SessionRenewal::Alive(ttl) => RenewOutcome::Renewed { ttl },
                        SessionRenewal::Gone => RenewOutcome::Lost {
                            reason: format!(
                                "consul session {session} was invalidated (expired or destroyed)"
                            ),
                        },
                    };
                    renewed.push((session.clone(), outcome.clone()));
                    outcome
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        let detail = grant.detail::<ConsulGrant>();
        let result = match &detail.held {
            Held::Mutex { key } => {
                mutex::release(
                    &self.http,
                    &self.released,
                    &grant.name,
                    key,
                    &detail.session,
                    &detail.value,
                )
                .await
            }
            Held::Semaphore { prefix } => {
                semaphore::release(&self.http, &grant.name, prefix, &detail.session).await
            }
        };
        if !matches!(&result, Err(e) if e.is_transient()) {
            self.sessions.unreserve(&detail.session, &grant.name);
        }
        result
    }

    async fn watch(&self, grant: &Grant) -> String {
        let detail = grant.detail::<ConsulGrant>();
        tokio::time::sleep(WATCH_GRACE).await;
        // Reads from the acquisition's index: changes while waiting count.
        let Ok(_slot) = self.watches.acquire().await else {
            return std::future::pending().await; // never closed
        };
        match &detail.held {
            Held::Mutex { key } => {
                mutex::watch(&self.http, key, &detail.session, detail.index).await
            }
            Held::Semaphore { prefix } => {
                semaphore::watch(
                    &self.http,
                    &grant.name,
                    prefix,
                    &detail.session,
                    detail.index,
                )
                .await
            }
        }
    }

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        let session = &grant.detail::<ConsulGrant>().session;
        self.sessions.unreserve(session, &grant.name);
        if end == LeaseEnd::Abandoned {
            self.sessions.retire(session);
        }
    }

    async fn status(&self, name: &str) -> Result<LockStatus> {
        inspect::status(&self.http, name, &self.key(name)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        inspect::list(&self.http, &self.http.config().prefix, prefix).await
    }

    async fn force_release(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        inspect::force_release(&self.http, &self.released, name, &self.key(name), holder).await
    }

    async fn renew_holder(&self, name: &str, holder: &str, _ttl: Duration) -> Result<Duration> {
        inspect::renew_holder(&self.http, name, &self.key(name), holder).await
    }

    async fn close(&self) {
        self.sessions.destroy_all(&self.http).await;
    }
}

/// Consistent blocking reads of `key`, from index `since`, until `lost`
/// names a reason. Read errors are retried with backoff: renewals remain the
/// safety net.
async fn watch_loop(
    http: &ConsulHttp,
    key: &str,
    recurse: bool,
    since: u64,
    lost: impl Fn(&KvRead) -> Option<String>,
) -> String {
    let mut index = since;
    let mut retry = WATCH_RETRY;
    loop {
        let started = Instant::now();
        let mode = if index == 0 {
            ReadMode::Now
        } else {
            ReadMode::Blocking { index, until: None }
        };
        match http.read(key, recurse, mode, true).await {
            Ok(read) => {
                if let Some(reason) = lost(&read) {
                    return reason;
                }
                index = next_index(index, read.index);
                retry = WATCH_RETRY;
                tokio::time::sleep_until(started + WATCH_FLOOR).await;
            }
            Err(error) => {
                tracing::debug!(%error, key, "consul watch read failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Blocks until `key` moves past `marker` or `until` passes.
async fn wait_past(
    http: &ConsulHttp,
    key: &str,
    recurse: bool,
    marker: ChangeMarker,
    until: Option<Instant>,
) -> Result<()> {
    loop {
        let mode = ReadMode::Blocking {
            index: marker.version,
            until,
        };
        let read = http.read(key, recurse, mode, false).await?;
        let timed_out = until.is_some_and(|u| Instant::now() >= u);
        if read.index != marker.version || marker.version == 0 || timed_out {
            return Ok(());
        }
        // Consul's own wait ended with nothing new: block again.
    }
}

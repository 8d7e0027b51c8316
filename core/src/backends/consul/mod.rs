//! `consul://host:port`: locks on Consul sessions and KV, interoperable with
//! HashiCorp's own clients. A limit of 1 uses the mutex recipe
//! ([`mutex`], key = prefix + name); a larger limit uses the semaphore recipe
//! ([`semaphore`], keys under prefix + name + `/`). One TTL session per client
//! renews every lease ([`session`]). Waits, loss watches and the lock event
//! stream share one blocking query per key or prefix ([`topics`]), never a
//! fixed-period poll; a parked waiter makes no request until the lock
//! changes ([`acquire`], [`wait_queue`]).

mod acquire;
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod inspect;
pub(crate) mod mutex;
mod orphans;
pub(crate) mod semaphore;
pub(crate) mod session;
pub(crate) mod topics;
mod wait_queue;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use config::{ConsulConfig, DEFAULT_MAX_CONNECTIONS};
pub use mutex::LOCK_FLAG;
pub use semaphore::SEMAPHORE_FLAG;

use self::http::{ConsulHttp, ReadMode};
use self::mutex::ReleasedKeys;
use self::semaphore::Keys;
use self::session::{Reserved, SessionPool, SessionRenewal};
use self::topics::Topics;
use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::error::{Error, Result};
use crate::model::LockFeed;

/// How long a fresh lease goes unwatched. Watching is a long-poll that holds
/// an HTTP connection; leases released sooner never open one (a loss in this
/// window is still caught, by the first watch read or the next renewal).
/// Leases beyond the long-poll cap wait for a slot; until they get one,
/// their session renewals (which catch an expired or destroyed session) are
/// what detects their loss.
const WATCH_GRACE: Duration = Duration::from_millis(200);

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
    http: Arc<ConsulHttp>,
    sessions: Arc<SessionPool>,
    released: ReleasedKeys,
    topics: Topics,
}

impl ConsulBackend {
    /// Connects and checks that the agent answers, has a leader, and knows
    /// the configured token.
    pub async fn connect(config: ConsulConfig) -> Result<Self> {
        let http = Arc::new(ConsulHttp::new(config)?);
        http.check().await?;
        // Learns the cluster's index, where lock event streams start from.
        // Best effort: a token may not read outside its lock keys.
        let probe = format!("{}.polylock-index", http.config().prefix);
        if let Err(error) = http.read(&probe, false, ReadMode::Now, false).await {
            tracing::debug!(%error, "could not read consul's index");
        }
        let topics = Topics::new(http.clone(), http.config().max_long_polls());
        Ok(ConsulBackend {
            http,
            sessions: Arc::default(),
            released: ReleasedKeys::default(),
            topics,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.http.config().prefix)
    }

    /// The grant of `held`, taken with `session` at index `token`.
    fn grant(&self, request: &AcquireRequest, session: Reserved, token: u64, held: Held) -> Grant {
        Grant {
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
                value: request.value.as_bytes().to_vec(),
                index: token,
            }),
        }
    }

    /// Releases in the background what `session` may still hold on `name`
    /// ([`orphans`]); its reservation of the name ends now, and the session
    /// is lent for the name again once that is done.
    fn free_orphan(&self, name: &str, session: String, held: Held, value: Vec<u8>) {
        let orphan = orphans::Orphan {
            name: name.to_string(),
            session,
            held,
            value,
        };
        orphans::free_in_background(self.http.clone(), self.sessions.clone(), orphan);
    }

    /// An attempt with `session` failed in transit: Consul may have
    /// committed a take whose reply was lost, so what the session may hold
    /// on the request's name is freed as an orphan.
    fn free_in_doubt(&self, request: &AcquireRequest, session: String) {
        let key = self.key(&request.name);
        let held = if request.limit == 1 {
            Held::Mutex { key }
        } else {
            Held::Semaphore { prefix: key }
        };
        let value = request.value.as_bytes().to_vec();
        self.free_orphan(&request.name, session, held, value);
    }

    /// The topic a lease or waiter on `name` follows: the mutex key, or the
    /// semaphore's prefix.
    fn topic_of(&self, name: &str, limit: u32) -> Arc<topics::Topic> {
        let key = self.key(name);
        if limit == 1 {
            self.topics.get(&key, false)
        } else {
            self.topics.get(&format!("{key}/"), true)
        }
    }
}

#[async_trait]
impl Backend for ConsulBackend {
    fn scheme(&self) -> &'static str {
        "consul"
    }

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        DeclaredCapabilities {
            fencing: true,
            change_notifications: true,
            semaphores: true,
            shared_renewal: true,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        Some(self)
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
                    return Ok(Attempt::Acquired(self.grant(request, session, token, held)))
                }
                Ok(ConsulAttempt::Busy(marker)) => {
                    self.sessions.unreserve(&session.id, &request.name);
                    return Ok(Attempt::Busy(marker));
                }
                Ok(ConsulAttempt::SessionGone) => {
                    self.sessions.forget_session(&session.id);
                }
                Err(error) if error.is_transient() => {
                    self.free_in_doubt(request, session.id);
                    return Err(error);
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
        let wake = marker.retry_after.map(|pause| Instant::now() + pause);
        let until = match (until, wake) {
            (Some(u), Some(w)) => Some(u.min(w)),
            (u, w) => u.or(w),
        };
        let topic = self.topic_of(&request.name, request.limit);
        let moved = topic.first(0, |s| (s.index != marker.version).then_some(()));
        match until {
            Some(until) => {
                let _ = tokio::time::timeout_at(until, moved).await;
            }
            None => moved.await,
        }
        Ok(())
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

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        let detail = grant.detail::<ConsulGrant>();
        match end {
            // The session may live on (renewing the client's other leases)
            // and still hold the key: released in the background.
            LeaseEnd::Lost => self.free_orphan(
                &grant.name,
                detail.session.clone(),
                detail.held.clone(),
                detail.value.clone(),
            ),
            LeaseEnd::Abandoned => {
                self.sessions.unreserve(&detail.session, &grant.name);
                self.sessions.retire(&detail.session);
            }
        }
    }

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        Some(self)
    }

    fn event_source(&self) -> Option<&dyn LockEventSource> {
        Some(self)
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        Some(self)
    }

    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        Some(self)
    }

    async fn close(&self) {
        self.sessions.destroy_all(&self.http).await;
    }
}

#[async_trait]
impl AcquirePolicy for ConsulBackend {
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        acquire::acquire(self, request, until, signals).await
    }
}

#[async_trait]
impl LossWatch for ConsulBackend {
    async fn watch(&self, grant: &Grant) -> String {
        let detail = grant.detail::<ConsulGrant>();
        tokio::time::sleep(WATCH_GRACE).await;
        let topic = self.topic_of(&grant.name, grant.limit);
        // Only states from the acquisition's index on can show it gone.
        match &detail.held {
            Held::Mutex { key } => {
                topic
                    .first(detail.index, |s| mutex::lost(key, &detail.session, s))
                    .await
            }
            Held::Semaphore { prefix } => {
                let keys = Keys::new(prefix, &detail.session);
                topic
                    .first(detail.index, |s| {
                        semaphore::lost(&grant.name, &keys, &detail.session, s)
                    })
                    .await
            }
        }
    }
}

impl LockEventSource for ConsulBackend {
    fn lock_events(&self, prefix: &str) -> LockFeed {
        events::stream(
            &self.topics,
            &self.http.config().prefix,
            prefix,
            self.http.last_index(),
        )
    }
}

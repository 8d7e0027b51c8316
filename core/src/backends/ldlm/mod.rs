//! `ldlm://host:port` (and `ldlms://` with TLS): locks on an LDLM server
//! over gRPC.
//!
//! - **Waiting is the server's.** An acquire that may wait is one `Lock`
//!   call that the server holds until the lock is granted; its time limit is
//!   the call's gRPC deadline, backed by `wait_timeout_seconds` (rounded up).
//!   A try is one `TryLock`. Nothing polls.
//! - **Leases** are taken with `lock_timeout_seconds` = the TTL and renewed
//!   by the keeper with `Renew` (one call per lease; all of a connection's
//!   leases form one renewal unit, renewed together). A limit is LDLM's
//!   `size`.
//! - **The connection is the session** ([`connection`]): the server frees
//!   every lock of a connection when it ends, so each lease watches the
//!   connection it was taken on and is reported lost when it ends; new work
//!   opens a new connection.
//! - **No fencing token** exists in the protocol: leases have
//!   `fencing_token() == None`. LDLM gives an efficiency lock, not a fenced
//!   one.
//! - A caller that stops waiting cancels its `Lock` call; should the server
//!   have granted it at that instant, the grant times out on the server
//!   after one TTL (or frees with the connection).

pub(crate) mod config;
mod connection;
pub(crate) mod errors;
mod holder_ops;
mod tls;

/// The LDLM protocol as generated from `core/proto/ldlm.proto`: its
/// messages and the gRPC client, for tools that speak LDLM directly (the
/// benchmarks' raw floor). Using polylock needs none of it.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("ldlm");
}

use proto as pb;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

pub use config::{LdlmConfig, DEFAULT_PORT, MIN_KEEPALIVE};

use self::connection::{Connection, Connections};
use self::errors::{refusal, status_error, Refusal};
use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::error::{Error, Result};

/// How long past the caller's deadline a `Lock` call may still answer: the
/// server ends the wait at the deadline itself, and its answer (a grant at
/// the last moment included) is worth waiting for rather than leaving an
/// unknown grant behind.
const ANSWER_GRACE: Duration = Duration::from_millis(500);
/// Most renewals in flight at once on one connection.
const RENEWALS_IN_FLIGHT: usize = 256;
/// A grant whose `Lock` call waited longer than this fraction of the TTL is
/// renewed before it is handed out: the server started its timer at the
/// grant, somewhere in the call, and only a fresh renewal gives a send time
/// the lease's deadline can count from safely.
const REPROVE_AFTER: f64 = 0.25;

/// The private part of an LDLM grant.
struct LdlmGrant {
    /// The grant's key (also [`Grant::holder`]).
    key: String,
    /// The connection the lock was taken on: the lock lives as long as it.
    connection: Arc<Connection>,
    /// The TTL in whole seconds, as sent.
    ttl_seconds: i32,
}

/// The `ldlm://` backend.
pub struct LdlmBackend {
    config: Arc<LdlmConfig>,
    connections: Connections,
}

impl LdlmBackend {
    /// Connects and checks that the server answers and accepts the
    /// password (or needs none).
    pub async fn connect(config: LdlmConfig) -> Result<Self> {
        let config = Arc::new(config);
        if let Some(password) = &config.password {
            metadata_value(password.expose())?;
        }
        let backend = LdlmBackend {
            connections: Connections::new(config.clone())?,
            config,
        };
        let backend_ref = &backend;
        backend
            .retrying(None, |connection| async move {
                // A renewal of a lock no one can hold: the cheapest call that
                // passes the server's password check.
                let probe = pb::RenewRequest {
                    name: String::new(),
                    key: String::new(),
                    lock_timeout_seconds: 1,
                };
                let request = backend_ref.request(probe, Some(backend_ref.config.call_timeout))?;
                backend_ref
                    .answer(connection.rpc().renew(request))
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(backend)
    }

    /// A request carrying the password, with an optional gRPC deadline.
    fn request<T>(&self, message: T, timeout: Option<Duration>) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(password) = &self.config.password {
            request
                .metadata_mut()
                .insert("authorization", metadata_value(password.expose())?);
        }
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }

    /// A request for a call the server answers at once (all but `Lock`),
    /// with the call time limit as its deadline.
    fn at_once<T>(&self, message: T) -> Result<tonic::Request<T>> {
        self.request(message, Some(self.config.call_timeout))
    }

    /// The reply to a call the server answers at once; a server that does
    /// not answer within the call time limit is a connection error.
    async fn answer<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.call_timeout + ANSWER_GRACE, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(status_error(&status)),
            Err(_) => Err(Error::Connection(format!(
                "the LDLM server at {} did not answer within {:?}",
                self.config.address(),
                self.config.call_timeout
            ))),
        }
    }

    /// Runs `call` on the open connection, opening one as needed, and
    /// retries it up to `max_retries` times while the server is unavailable
    /// (never past `until`).
    async fn retrying<T, F, Fut>(&self, until: Option<Instant>, call: F) -> Result<T>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let result = match self.connections.get().await {
                Ok(connection) => call(connection).await,
                Err(error) => Err(error),
            };
            match result {
                Err(error) if error.is_transient() && attempt < self.config.max_retries => {
                    let pause = Duration::from_millis(100 << attempt.min(4));
                    let wake = Instant::now() + pause;
                    if until.is_some_and(|until| wake >= until) {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "LDLM server unavailable; retrying");
                    attempt += 1;
                    tokio::time::sleep_until(wake).await;
                }
                other => return other,
            }
        }
    }

    fn grant(&self, request: &AcquireRequest, key: String, connection: Arc<Connection>) -> Grant {
        Grant {
            name: request.name.clone(),
            limit: request.limit,
            holder: key.clone(),
            fencing_token: None,
            ttl: request.ttl,
            proven_until: None,
            renewal_unit: Some(format!("ldlm-connection-{}", connection.generation)),
            detail: Arc::new(LdlmGrant {
                key,
                connection,
                ttl_seconds: whole_seconds(request.ttl),
            }),
        }
    }

    /// One `TryLock`.
    async fn try_lock(&self, request: &AcquireRequest) -> Result<Option<Grant>> {
        let size = size(request.limit)?;
        self.retrying(None, |connection| async move {
            let message = pb::TryLockRequest {
                name: request.name.clone(),
                lock_timeout_seconds: Some(whole_seconds(request.ttl)),
                size: Some(size),
            };
            let reply = self
                .answer(connection.rpc().try_lock(self.at_once(message)?))
                .await?;
            self.read_lock_reply(request, reply, connection)
        })
        .await
    }

    /// A `Lock` or `TryLock` reply: the grant, `None` for busy.
    fn read_lock_reply(
        &self,
        request: &AcquireRequest,
        reply: pb::LockResponse,
        connection: Arc<Connection>,
    ) -> Result<Option<Grant>> {
        Ok(lock_reply(&request.name, request.limit, reply)?
            .map(|key| self.grant(request, key, connection)))
    }

    /// One `Lock` call that waits on the server until `until` (forever
    /// without one).
    async fn lock(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
    ) -> Result<Option<Grant>> {
        let size = size(request.limit)?;
        self.retrying(until, |connection| async move {
            let remaining = until.map(|until| until.saturating_duration_since(Instant::now()));
            let message = pb::LockRequest {
                name: request.name.clone(),
                // The server's own limit backs the deadline up.
                wait_timeout_seconds: remaining.map(|r| whole_seconds(r).max(1)),
                lock_timeout_seconds: Some(whole_seconds(request.ttl)),
                size: Some(size),
            };
            let mut rpc = connection.rpc();
            let call = rpc.lock(self.request(message, remaining)?);
            let answer = match until {
                Some(until) => match tokio::time::timeout_at(until + ANSWER_GRACE, call).await {
                    Ok(answer) => answer,
                    Err(_) => return Ok(None),
                },
                None => call.await,
            };
            match answer {
                Ok(reply) => self.read_lock_reply(request, reply.into_inner(), connection),
                Err(status) if errors::is_deadline(&status) => Ok(None),
                Err(status) => Err(status_error(&status)),
            }
        })
        .await
    }

    /// One `Renew` of `key`'s lease on `name`: `Ok(Err(why))` when the
    /// server no longer has it.
    async fn renew_call(
        &self,
        connection: &Connection,
        name: &str,
        key: &str,
        ttl_seconds: i32,
    ) -> Result<std::result::Result<(), String>> {
        let message = pb::RenewRequest {
            name: name.to_string(),
            key: key.to_string(),
            lock_timeout_seconds: ttl_seconds,
        };
        let reply = self
            .answer(connection.rpc().renew(self.at_once(message)?))
            .await?;
        lease_reply(name, reply.locked, reply.error.as_ref())
    }

    /// One `Unlock` of `key`'s lease on `name`: `Ok(Err(why))` when the
    /// server no longer has it.
    async fn unlock_call(
        &self,
        connection: &Connection,
        name: &str,
        key: &str,
    ) -> Result<std::result::Result<(), String>> {
        let message = pb::UnlockRequest {
            name: name.to_string(),
            key: key.to_string(),
        };
        let reply = self
            .answer(connection.rpc().unlock(self.at_once(message)?))
            .await?;
        lease_reply(name, reply.unlocked, reply.error.as_ref())
    }

    /// Renews one grant on its own connection, retrying while the server
    /// is unavailable.
    async fn renew_one(&self, grant: &Grant) -> Result<RenewOutcome> {
        let detail = grant.detail::<LdlmGrant>();
        let mut attempt = 0;
        loop {
            if detail.connection.is_closed() {
                return Ok(RenewOutcome::Lost {
                    reason: connection_gone(&detail.connection.closed().await),
                });
            }
            let renewed = self
                .renew_call(
                    &detail.connection,
                    &grant.name,
                    &detail.key,
                    detail.ttl_seconds,
                )
                .await;
            match renewed {
                Ok(Ok(())) => return Ok(RenewOutcome::Renewed { ttl: grant.ttl }),
                Ok(Err(why)) => {
                    return Ok(RenewOutcome::Lost {
                        reason: format!(
                            "the LDLM server no longer has the lease (its timer ran out or it was unlocked): {why}"
                        ),
                    })
                }
                Err(error) if error.is_transient() && attempt < self.config.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[async_trait]
impl Backend for LdlmBackend {
    fn scheme(&self) -> &'static str {
        "ldlm"
    }

    fn declared_capabilities(&self) -> DeclaredCapabilities {
        DeclaredCapabilities {
            fencing: false,
            change_notifications: true,
            semaphores: true,
            shared_renewal: false,
            server_wait: true,
            idle_limit_resets: false,
            outlives_connection: false,
        }
    }

    fn acquire_policy(&self) -> Option<&dyn AcquirePolicy> {
        Some(self)
    }

    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        Ok(match self.try_lock(request).await? {
            Some(grant) => Attempt::Acquired(grant),
            None => Attempt::Busy(ChangeMarker::default()),
        })
    }

    async fn wait_for_change(
        &self,
        _request: &AcquireRequest,
        _marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        // Never used: acquire waits on the server. Returns at `until` so a
        // caller of the default policy would not spin.
        match until {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
        Ok(())
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        stream::iter(grants.iter().cloned())
            .map(|grant| async move { self.renew_one(&grant).await })
            .buffered(RENEWALS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        let detail = grant.detail::<LdlmGrant>();
        let lost = |reason: String| Error::Lost {
            name: grant.name.clone(),
            reason,
        };
        if detail.connection.is_closed() {
            return Err(lost(connection_gone(&detail.connection.closed().await)));
        }
        self.unlock_call(&detail.connection, &grant.name, &detail.key)
            .await?
            .map_err(|why| lost(format!("the LDLM server no longer had the lease: {why}")))
    }

    fn forget(&self, _grant: &Grant, _end: LeaseEnd) {}

    fn loss_watch(&self) -> Option<&dyn LossWatch> {
        Some(self)
    }

    fn event_source(&self) -> Option<&dyn LockEventSource> {
        None
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        None
    }

    fn holder_ops(&self) -> Option<&dyn HolderOps> {
        Some(self)
    }

    async fn close(&self) {
        self.connections.close();
    }
}

#[async_trait]
impl AcquirePolicy for LdlmBackend {
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        let sent = Instant::now();
        if until.is_some_and(|until| until <= sent) {
            return Ok(match self.try_lock(request).await? {
                Some(grant) => Acquisition::Granted {
                    grant,
                    proven_from: sent,
                },
                None => Acquisition::Busy,
            });
        }
        // The server does not say whether it parks the call: it counts as
        // waiting from the moment it is sent.
        signals.started();
        let grant = tokio::select! {
            biased;
            granted = self.lock(request, until) => granted?,
            _ = signals.caller_gone() => return Ok(Acquisition::CallerGone),
        };
        let Some(grant) = grant else {
            return Ok(Acquisition::Busy);
        };
        let mut proven_from = sent;
        if sent.elapsed() > request.ttl.mul_f64(REPROVE_AFTER) {
            let renewed = Instant::now();
            match self.renew_one(&grant).await {
                Ok(RenewOutcome::Renewed { .. }) => proven_from = renewed,
                // A lost grant is reported by the keeper at once (its
                // deadline has passed or its connection is gone).
                Ok(RenewOutcome::Lost { .. }) | Err(_) => {}
            }
        }
        Ok(Acquisition::Granted { grant, proven_from })
    }
}

#[async_trait]
impl LossWatch for LdlmBackend {
    async fn watch(&self, grant: &Grant) -> String {
        let connection = &grant.detail::<LdlmGrant>().connection;
        connection_gone(&connection.closed().await)
    }
}

/// Why a lease of a connection that ended is lost.
fn connection_gone(reason: &str) -> String {
    format!("{reason}; the LDLM server frees every lock taken on a connection when it ends")
}

/// A `Lock` or `TryLock` reply about lock `name` requested with `limit`:
/// the lease's key when granted, `None` for busy (or a wait that ran out).
pub(crate) fn lock_reply(
    name: &str,
    limit: u32,
    reply: pb::LockResponse,
) -> Result<Option<String>> {
    if reply.locked {
        return Ok(Some(reply.key));
    }
    match reply.error.as_ref().map(|e| refusal(name, limit, e)) {
        None | Some(Refusal::WaitTimedOut) => Ok(None),
        Some(Refusal::Failed(error)) => Err(error),
        Some(Refusal::NoSuchLock(message)) => Err(Error::Backend(format!(
            "the LDLM server refused lock {name:?}: {message}"
        ))),
    }
}

/// A `Renew` (`done`: `locked`) or `Unlock` (`done`: `unlocked`) reply
/// about `name`: `Ok(Err(why))` when the server no longer has the lease.
pub(crate) fn lease_reply(
    name: &str,
    done: bool,
    error: Option<&pb::Error>,
) -> Result<std::result::Result<(), String>> {
    if done {
        return Ok(Ok(()));
    }
    no_such_lease(name, error)
}

/// The reason in a `Renew` or `Unlock` reply that did not succeed: the
/// server has no such lease (or says nothing), or an error.
fn no_such_lease(name: &str, error: Option<&pb::Error>) -> Result<std::result::Result<(), String>> {
    match error.map(|e| refusal(name, 1, e)) {
        Some(Refusal::Failed(error)) => Err(error),
        Some(Refusal::NoSuchLock(message)) => Ok(Err(message)),
        None | Some(Refusal::WaitTimedOut) => Ok(Err("the server gave no reason".into())),
    }
}

/// A limit as LDLM's `size`.
fn size(limit: u32) -> Result<i32> {
    i32::try_from(limit)
        .map_err(|_| Error::invalid(format!("LDLM limits are at most {}, got {limit}", i32::MAX)))
}

/// A duration in whole seconds, rounded up, as LDLM's int32 fields take it.
fn whole_seconds(duration: Duration) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// The password as gRPC metadata (never logged: marked sensitive).
fn metadata_value(
    password: &str,
) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    let mut value = tonic::metadata::MetadataValue::try_from(password).map_err(|_| {
        Error::invalid(
            "an LDLM password is printable ASCII (gRPC metadata cannot carry it otherwise)",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

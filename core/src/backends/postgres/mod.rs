//! `postgres://` / `postgresql://`: leases in a PostgreSQL table (see
//! [`schema`] for the SQL), fencing tokens from a sequence, one session row
//! per client and TTL renewed by one statement for all its leases, waits
//! woken by `LISTEN`/`NOTIFY` on one connection per client ([`listen`]).
//!
//! Every lock operation is one prepared statement (one round trip) calling
//! a PL/pgSQL function, judged on the server's clock. Queries go over two
//! connections: the keeper's (renewals, releases) and the callers'
//! (acquisitions, operator views), so a renewal never queues behind an
//! acquisition waiting for a name's advisory lock.

pub mod config;
mod connection;
mod inspect;
pub(crate) mod listen;
pub mod schema;
mod verify_ca;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_postgres::{Client, Statement};

pub use config::{PostgresConfig, SslMode};

use self::connection::{is_race, Connector};
use self::listen::{Listener, Note};
use self::schema::{Names, VERSION_MARK};
use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::backends::retry::{race_backoff, random_u64};
use crate::error::{Error, Result};
use crate::model::LockFeed;

/// The longest pause between a waiter's looks while the `LISTEN`
/// connection is down.
const FALLBACK_CEILING: Duration = Duration::from_secs(2);

/// The PostgreSQL backend of one client.
pub struct PostgresBackend {
    connector: Connector,
    names: Names,
    /// 0: the keeper's connection; 1: the callers'.
    connections: [tokio::sync::Mutex<Option<Arc<Prepared>>>; 2],
    listener: Arc<Listener>,
    listen_task: tokio::task::JoinHandle<()>,
    client_id: String,
    next_holder: AtomicU64,
    /// The current session per TTL in ms.
    sessions: Mutex<HashMap<u64, String>>,
    next_session: AtomicU64,
}

/// One connection and its prepared statements.
struct Prepared {
    client: Client,
    acquire: Statement,
    release: Statement,
    force: Statement,
    renew: Statement,
    renew_holder: Statement,
    abandon: Statement,
    status: Statement,
    list: Statement,
}

/// The outcome of one acquisition statement.
enum Try {
    Granted(Grant),
    /// Busy: the sessions of the live holders and the time each has left.
    Busy(Vec<(String, Duration)>),
}

impl PostgresBackend {
    /// Connects, creates the schema and table if they are not there yet,
    /// and starts listening.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let connector = Connector::new(&config)?;
        let names = Names::new(&config);
        let first = connector.query_connection().await?;
        ensure_schema(&first, &names, &connector).await?;
        let prepared = Arc::new(prepare(first, &names, &connector).await?);
        let (listener, listen_task) = Listener::start(connector.clone(), names.clone()).await?;
        let backend = PostgresBackend {
            connector,
            names,
            connections: [
                tokio::sync::Mutex::new(Some(prepared)),
                tokio::sync::Mutex::new(None),
            ],
            listener,
            listen_task,
            client_id: format!("{:016x}", random_u64()),
            next_holder: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(0),
        };
        // Old dead rows and sessions go, off the caller's path.
        if let Ok(connection) = backend.connection(0).await {
            let sweep = backend.names.sweep();
            crate::runtime::spawn(async move {
                let _ = connection.client.batch_execute(&sweep).await;
            });
        }
        Ok(backend)
    }

    /// Connection `slot`, opened (and its statements prepared) if it is not
    /// open or was lost.
    async fn connection(&self, slot: usize) -> Result<Arc<Prepared>> {
        let mut current = self.connections[slot].lock().await;
        if let Some(prepared) = current.as_ref().filter(|p| !p.client.is_closed()) {
            return Ok(prepared.clone());
        }
        let client = self.connector.query_connection().await?;
        let prepared = Arc::new(prepare(client, &self.names, &self.connector).await?);
        *current = Some(prepared.clone());
        Ok(prepared)
    }

    fn error(&self, error: &tokio_postgres::Error) -> Error {
        self.connector.error(error)
    }

    /// This client's session for leases of `ttl_ms`.
    fn session(&self, ttl_ms: u64) -> String {
        let mut sessions = self.sessions.lock().unwrap();
        sessions
            .entry(ttl_ms)
            .or_insert_with(|| self.new_session_id(ttl_ms))
            .clone()
    }

    fn new_session_id(&self, ttl_ms: u64) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{}-{ttl_ms}-{n}", self.client_id)
    }

    /// Forgets `session` (it expired or was taken over): the next lease of
    /// its TTL starts a new one.
    fn retire_session(&self, ttl_ms: u64, session: &str) {
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.get(&ttl_ms).is_some_and(|s| s == session) {
            let fresh = self.new_session_id(ttl_ms);
            sessions.insert(ttl_ms, fresh);
        }
    }

    /// One acquisition statement, retried on a race PostgreSQL resolved by
    /// aborting us and once with a new session if ours was gone.
    async fn attempt(&self, request: &AcquireRequest) -> Result<Try> {
        let ttl_ms = ttl_ms(request.ttl);
        let holder = format!(
            "{}.{}",
            self.client_id,
            self.next_holder.fetch_add(1, Ordering::Relaxed)
        );
        let limit = i32::try_from(request.limit).unwrap_or(i32::MAX);
        let ttl = ttl_param(ttl_ms);
        let mut races = 0;
        let mut fresh_session = false;
        loop {
            let session = self.session(ttl_ms);
            let connection = self.connection(1).await?;
            let row = match connection
                .client
                .query_one(
                    &connection.acquire,
                    &[
                        &request.name,
                        &limit,
                        &holder,
                        &session,
                        &request.value.as_bytes(),
                        &ttl,
                    ],
                )
                .await
            {
                Ok(row) => row,
                Err(e) if is_race(&e) && races < 8 => {
                    races += 1;
                    race_backoff(races).await;
                    continue;
                }
                Err(e) => return Err(self.error(&e)),
            };
            let outcome: String = row.get(0);
            match outcome.as_str() {
                "granted" => {
                    let token: i64 = row.get(1);
                    return Ok(Try::Granted(Grant {
                        name: request.name.clone(),
                        limit: request.limit,
                        holder,
                        fencing_token: Some(token as u64),
                        ttl: Duration::from_millis(ttl_ms),
                        proven_until: None,
                        renewal_unit: Some(session),
                        detail: Arc::new(()),
                    }));
                }
                "mismatch" => {
                    let existing: i32 = row.get(2);
                    return Err(Error::LimitMismatch {
                        name: request.name.clone(),
                        requested: request.limit,
                        existing: Some(existing as u32),
                    });
                }
                "busy" => {
                    let sessions: Vec<String> = row.get(3);
                    let left: Vec<i64> = row.get(4);
                    return Ok(Try::Busy(
                        sessions
                            .into_iter()
                            .zip(left)
                            .map(|(s, ms)| (s, Duration::from_millis(ms.max(0) as u64)))
                            .collect(),
                    ));
                }
                "session_gone" if !fresh_session => {
                    fresh_session = true;
                    self.retire_session(ttl_ms, &session);
                }
                other => {
                    return Err(Error::Backend(format!(
                        "PostgreSQL at {}: the acquisition answered {other:?}",
                        self.connector.address()
                    )))
                }
            }
        }
    }
}

/// `ttl` in whole milliseconds, rounded up.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// `ttl_ms` as the statements' `int8` parameter.
fn ttl_param(ttl_ms: u64) -> i64 {
    i64::try_from(ttl_ms).unwrap_or(i64::MAX)
}

/// Creates polylock's objects unless they are there at this version.
async fn ensure_schema(client: &Client, names: &Names, connector: &Connector) -> Result<()> {
    let row = client
        .query_one(names.probe().as_str(), &[])
        .await
        .map_err(|e| connector.error(&e))?;
    let exists: bool = row.get(0);
    match (exists, row.get::<_, Option<String>>(1).as_deref()) {
        (true, Some(VERSION_MARK)) => return Ok(()),
        // Somebody else's table, or another version's: never touched.
        (true, comment) => {
            return Err(Error::Conflict {
                name: names.channel.clone(),
                detail: format!(
                    "the table exists but is not polylock's of this version (its comment: {comment:?}); choose another with schema= or table="
                ),
            })
        }
        (false, _) => {}
    }
    client
        .batch_execute(&names.create())
        .await
        .map_err(|e| connector.error(&e))
}

async fn prepare(client: Client, names: &Names, connector: &Connector) -> Result<Prepared> {
    let p = |sql: String| {
        let client = &client;
        async move { client.prepare(&sql).await.map_err(|e| connector.error(&e)) }
    };
    Ok(Prepared {
        acquire: p(names.acquire()).await?,
        release: p(names.release()).await?,
        force: p(names.force()).await?,
        renew: p(names.renew()).await?,
        renew_holder: p(names.renew_holder()).await?,
        abandon: p(names.abandon()).await?,
        status: p(names.status()).await?,
        list: p(names.list()).await?,
        client,
    })
}

#[async_trait]
impl Backend for PostgresBackend {
    fn scheme(&self) -> &'static str {
        "postgres"
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
        Ok(match self.attempt(request).await? {
            Try::Granted(grant) => Attempt::Acquired(grant),
            Try::Busy(_) => Attempt::Busy(ChangeMarker::default()),
        })
    }

    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        _marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        // Only reached through `try_then_wait`, which this backend does not
        // use; a spurious return is allowed.
        let mut notes = self.listener.subscribe();
        let deadline = until.unwrap_or_else(|| Instant::now() + FALLBACK_CEILING);
        loop {
            tokio::select! {
                note = notes.recv() => match note {
                    Ok(Note::Freed { name }) if name == request.name => return Ok(()),
                    Ok(_) => {}
                    Err(_) => return Ok(()),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
        }
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        let Some(first) = grants.first() else {
            return Ok(Vec::new());
        };
        let session = first.renewal_unit.clone().unwrap_or_default();
        let ttl_ms = ttl_ms(first.ttl);
        let connection = self.connection(0).await?;
        let row = connection
            .client
            .query_one(&connection.renew, &[&session, &ttl_param(ttl_ms)])
            .await
            .map_err(|e| self.error(&e))?;
        let renewed: bool = row.get(0);
        let held: Vec<String> = row.get(1);
        if !renewed {
            self.retire_session(ttl_ms, &session);
        }
        Ok(grants
            .iter()
            .map(|grant| {
                if !renewed {
                    RenewOutcome::Lost {
                        reason: "its session expired before it was renewed".into(),
                    }
                } else if held.contains(&grant.holder) {
                    RenewOutcome::Renewed { ttl: grant.ttl }
                } else {
                    RenewOutcome::Lost {
                        reason: "released by another client (an operator), or expired and taken"
                            .into(),
                    }
                }
            })
            .collect())
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        let connection = self.connection(0).await?;
        let row = connection
            .client
            .query_one(&connection.release, &[&grant.name, &grant.holder])
            .await
            .map_err(|e| self.error(&e))?;
        let outcome: String = row.get(0);
        match outcome.as_str() {
            "released" => Ok(()),
            "expired" => Err(Error::Lost {
                name: grant.name.clone(),
                reason: "its session expired before the release".into(),
            }),
            _ => Err(Error::Lost {
                name: grant.name.clone(),
                reason: "no longer held: released by an operator, or expired and taken".into(),
            }),
        }
    }

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        let (name, holder) = (grant.name.clone(), grant.holder.clone());
        let slot = &self.connections[0];
        let connection = slot.try_lock().ok().and_then(|c| c.clone());
        let Some(connection) = connection else {
            return;
        };
        crate::runtime::spawn(async move {
            let statement = match end {
                // What is left of a lost lease goes, waking waiters.
                LeaseEnd::Lost => &connection.release,
                // Lives until its session's expiry as it stands.
                LeaseEnd::Abandoned => &connection.abandon,
            };
            let _ = connection
                .client
                .execute(statement, &[&name, &holder])
                .await;
        });
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
        self.listen_task.abort();
        for slot in &self.connections {
            slot.lock().await.take();
        }
    }
}

#[async_trait]
impl AcquirePolicy for PostgresBackend {
    async fn acquire(
        &self,
        request: &AcquireRequest,
        until: Option<Instant>,
        signals: &mut WaitSignals<'_>,
    ) -> Result<Acquisition> {
        let mut fallback = Duration::from_millis(100);
        loop {
            // Subscribed before the attempt, so no release after it is missed.
            let mut notes = self.listener.subscribe();
            let sent = Instant::now();
            let blockers = match self.attempt(request).await? {
                Try::Granted(grant) => {
                    return Ok(Acquisition::Granted {
                        grant,
                        proven_from: sent,
                    })
                }
                Try::Busy(blockers) => blockers,
            };
            let now = Instant::now();
            if until.is_some_and(|until| now >= until) {
                return Ok(Acquisition::Busy);
            }
            signals.started();
            // Each holder's expiry (as this client sees it), pushed on as
            // their sessions are renewed: no request while they hold.
            let mut expiries: HashMap<String, Instant> = HashMap::new();
            for (session, left) in blockers {
                let at = now + left;
                expiries
                    .entry(session)
                    .and_modify(|e| *e = (*e).min(at))
                    .or_insert(at);
            }
            loop {
                let mut wake = expiries.values().min().copied();
                let polling = !self.listener.is_listening();
                if polling {
                    let at = Instant::now() + fallback;
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                } else {
                    fallback = Duration::from_millis(100);
                }
                if let Some(until) = until {
                    wake = Some(wake.map_or(until, |w| w.min(until)));
                }
                let sleep = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    note = notes.recv() => match note {
                        Ok(Note::Freed { name }) if name == request.name => break,
                        Ok(Note::Renewed { session, ttl }) => {
                            if let Some(at) = expiries.get_mut(&session) {
                                *at = (*at).max(Instant::now() + ttl);
                            }
                        }
                        Ok(Note::Resync) | Err(RecvError::Lagged(_)) => break,
                        Ok(Note::Freed { .. }) => {}
                        Err(RecvError::Closed) => {
                            return Err(Error::Connection("the PostgreSQL listener stopped".into()))
                        }
                    },
                    _ = sleep => {
                        if polling {
                            tracing::debug!(name = %request.name, "LISTEN connection down: looking again");
                            fallback = (fallback * 2).min(FALLBACK_CEILING);
                        }
                        break;
                    }
                    _ = signals.caller_gone() => return Ok(Acquisition::CallerGone),
                }
            }
            // Look again; at the deadline that look is the last.
        }
    }
}

#[async_trait]
impl LossWatch for PostgresBackend {
    async fn watch(&self, grant: &Grant) -> String {
        self.listener.lost(&grant.holder).await
    }
}

impl LockEventSource for PostgresBackend {
    fn lock_events(&self, _prefix: &str) -> LockFeed {
        LockFeed::live(self.listener.events())
    }
}

//! `mongodb://…`: locks on MongoDB and every MongoDB-wire server (FerretDB,
//! DocumentDB, Cosmos DB's Mongo API), safe because exclusion rests only on
//! unique `_id` inserts ([`ledger`]): a take and a release are each one
//! insert. Waiters wake on releases, told by this process at once or by
//! other clients' events through a tailable cursor on a capped collection
//! ([`events`]), one waiter per freed slot ([`waiters`]), or at the
//! earliest holder expiry, never on a fixed poll; a mutex released while a
//! waiter of this process waits is handed straight to it ([`handoff`]).
//! Expiry is judged on the server's clock ([`clock`]).
//!
//! Each lease has its document, naming its client's renewal unit (one per
//! TTL); a renewal is two requests per unit, whatever the lease count:
//! extend the unit's session and read the unit's end records
//! ([`sessions`]). A lease's loss shows as an end record, an `expired`
//! event naming it, or a renewal that came too late.

mod acquire;
mod clock;
pub(crate) mod config;
mod errors;
pub(crate) mod events;
mod handoff;
pub(crate) mod inspect;
mod known;
pub(crate) mod ledger;
pub(crate) mod plan;
pub(crate) mod sessions;
mod waiters;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use mongodb::options::{ClientOptions, CollectionOptions, ReadConcern, WriteConcern};
use tokio::time::Instant;

pub use config::MongoConfig;

use self::clock::ServerClock;
use self::events::{EventLog, Published};
use self::handoff::Handoff;
use self::known::NameKey;
use self::ledger::{IdReads, Ledger};
use self::plan::Generation;
use self::sessions::Sessions;
use crate::backend::{
    AcquirePolicy, AcquireRequest, Acquisition, Attempt, Backend, ChangeMarker,
    DeclaredCapabilities, Grant, HolderOps, Inspect, LeaseEnd, LockEventSource, LossWatch,
    RenewOutcome, WaitSignals,
};
use crate::error::{Error, Result};
use crate::model::{LockEventKind, LockFeed};

/// How often a client sweeps old sessions and end records.
const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// The private part of a Mongo grant.
struct MongoGrant {
    /// The lease's generation as inserted.
    generation: Generation,
}

impl MongoGrant {
    /// The grant of `request`'s take of `generation`: its fencing token is
    /// the generation's, and it renews with the generation's unit (every
    /// lease of one client with one TTL).
    fn grant(request: &AcquireRequest, generation: Generation) -> Grant {
        Grant {
            name: request.name.clone(),
            limit: request.limit,
            holder: generation.id.clone(),
            fencing_token: u64::try_from(generation.token).ok(),
            ttl: request.ttl,
            proven_until: None,
            renewal_unit: Some(generation.unit.clone()),
            detail: Arc::new(MongoGrant { generation }),
        }
    }
}

/// The `mongodb://` backend.
pub struct MongoBackend {
    ledger: Ledger,
    events: Arc<EventLog>,
    clock: ServerClock,
    /// This client's part of its renewal units' names.
    client_id: String,
    /// Per renewal unit, the session expiry its last renewal wrote (server
    /// ms): an abandoned lease keeps it as its own.
    proven: Mutex<HashMap<String, i64>>,
    /// When this client last swept old sessions.
    swept: Mutex<Option<Instant>>,
}

impl MongoBackend {
    /// Connects, checks the credentials, measures the server clock, and
    /// prepares the collections (index, capped events collection).
    pub async fn connect(config: MongoConfig) -> Result<Self> {
        let mut options = ClientOptions::parse(config.driver_url.expose())
            .await
            .map_err(|e| Error::invalid(format!("bad MongoDB URL: {e}")))?;
        if !config.explicit_write_concern {
            options.write_concern = Some(WriteConcern::majority());
        }
        options
            .server_selection_timeout
            .get_or_insert(Duration::from_secs(10));
        let client = mongodb::Client::with_options(options).map_err(errors::map)?;
        let db = client.database(&config.database);
        let (clock, _hello) = ServerClock::measure(&db).await?;
        let majority = || {
            CollectionOptions::builder()
                .read_concern(ReadConcern::majority())
                .build()
        };
        let locks = db.collection_with_options(&config.collection, majority());
        let sessions = db.collection_with_options(&config.sessions_collection(), majority());
        let info = db
            .run_command(mongodb::bson::doc! { "buildInfo": 1 })
            .await
            .map_err(errors::map)?;
        let ledger = Ledger::new(locks, Sessions::new(sessions), IdReads::for_server(&info));
        ledger.ensure_index().await?;
        let key = (
            config.driver_url.expose().to_string(),
            config.database.clone(),
            config.events_collection.clone(),
        );
        let events = EventLog::shared(key, client, db, &config.events_collection, clock).await?;
        Ok(MongoBackend {
            ledger,
            events,
            clock,
            client_id: format!("{:016x}", crate::backends::retry::random_u64()),
            proven: Mutex::default(),
            swept: Mutex::default(),
        })
    }

    /// The renewal unit of this client's leases with `ttl`.
    fn unit(&self, ttl: Duration) -> String {
        sessions::unit_name(&self.client_id, ttl)
    }

    fn proven(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.proven.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How this process's knowledge and waiters name `name`.
    fn key(&self, name: &str) -> NameKey {
        self.ledger.key(name)
    }

    /// Releases `held` (one insert: its release marker), tells this
    /// process's waiters at once and publishes the release. False when the
    /// slot had moved on (released or taken over already).
    async fn release_generation(&self, name: &str, held: &Generation) -> Result<bool> {
        release_marked(&self.ledger, &self.events, name, held).await
    }

    /// Renews the leases of one renewal unit in two requests, whatever
    /// their count: extend the unit's session, then read its end records.
    async fn renew_unit(
        &self,
        unit: &str,
        ttl: Duration,
        grants: &[Arc<Grant>],
    ) -> Result<Vec<RenewOutcome>> {
        let sessions = &self.ledger.sessions;
        let expires_at = self.clock.now_ms() + ttl.as_millis() as i64;
        sessions.renew(unit, expires_at).await?;
        self.proven().insert(unit.to_string(), expires_at);
        let ended = sessions.ended(unit).await?;
        if !ended.is_empty() {
            // Read once is enough: the outcomes below report them.
            let (sessions, read) = (sessions.clone(), ended.keys().cloned().collect::<Vec<_>>());
            crate::runtime::spawn(async move { sessions.forget_ends(&read).await });
        }
        self.sweep_now_and_then();
        Ok(grants
            .iter()
            .map(|grant| match ended.get(&grant.holder) {
                Some(true) => RenewOutcome::Lost {
                    reason: "another client (an operator) released the lease".into(),
                },
                Some(false) => RenewOutcome::Lost {
                    reason: "the lease expired and another holder took its slot".into(),
                },
                None => RenewOutcome::Renewed { ttl: grant.ttl },
            })
            .collect())
    }

    /// Sweeps old sessions and end records, at most every [`SWEEP_EVERY`]
    /// per client, off the caller's path.
    fn sweep_now_and_then(&self) {
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if swept.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return;
        }
        *swept = Some(Instant::now());
        let (sessions, now) = (self.ledger.sessions.clone(), self.clock.now_ms());
        crate::runtime::spawn(async move { sessions.sweep(now).await });
    }
}

/// Releases generation `held` of `name` with its release marker; tells
/// this process's waiters at once and the others by an event, written
/// before this returns. False if the marker's place was taken (the lease
/// had been taken over or released).
async fn release_marked(
    ledger: &Ledger,
    events: &EventLog,
    name: &str,
    held: &Generation,
) -> Result<bool> {
    if !ledger.release(name, held).await? {
        return Ok(false);
    }
    let marker = held.marker();
    events.released_here(&ledger.key(name), &marker);
    events
        .published(Published {
            coll: ledger.collection(),
            name,
            kind: LockEventKind::Released,
            holder: &held.id,
            token: held.token,
            generation: &marker,
            handed: false,
        })
        .await;
    Ok(true)
}

#[async_trait]
impl Backend for MongoBackend {
    fn scheme(&self) -> &'static str {
        "mongodb"
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
        Ok(match acquire::try_once(self, request).await? {
            Some((grant, _sent)) => Attempt::Acquired(grant),
            None => Attempt::Busy(ChangeMarker::default()),
        })
    }

    /// Only for callers of the trait's parts: its [`AcquirePolicy`] waits on
    /// its own. Returns at this process's next turn on the name (a release
    /// or a recheck time), or at `until`.
    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        let (waiter, _) = self.events.waiters.join(&self.key(&request.name));
        let soon = Instant::now() + marker.retry_after.unwrap_or(request.ttl);
        waiter.next_turn(until, soon).await;
        Ok(())
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        // The keeper hands over one unit's leases; group anyway.
        let mut by_unit: HashMap<(&str, Duration), Vec<usize>> = HashMap::new();
        for (at, grant) in grants.iter().enumerate() {
            let unit = grant.detail::<MongoGrant>().generation.unit.as_str();
            by_unit.entry((unit, grant.ttl)).or_default().push(at);
        }
        let mut outcomes: Vec<Option<RenewOutcome>> = grants.iter().map(|_| None).collect();
        for ((unit, ttl), members) in by_unit {
            let unit_grants: Vec<Arc<Grant>> =
                members.iter().map(|&at| grants[at].clone()).collect();
            let renewed = self.renew_unit(unit, ttl, &unit_grants).await?;
            for (at, outcome) in members.into_iter().zip(renewed) {
                outcomes[at] = Some(outcome);
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    fn forget(&self, grant: &Grant, end: LeaseEnd) {
        self.events.let_go_here(&self.key(&grant.name));
        let held = grant.detail::<MongoGrant>().generation.clone();
        match end {
            // Out of its unit, live until its last proof: it runs out as a
            // crashed holder's would, though the session lives on.
            LeaseEnd::Abandoned => {
                let proven = self.proven().get(&held.unit).copied();
                let until = proven.unwrap_or(held.expires_at).max(held.expires_at);
                let ledger = self.ledger.clone();
                crate::runtime::spawn(async move {
                    if let Err(error) = ledger.leave_unit(&held.id, until).await {
                        tracing::warn!(%error, "taking an abandoned lease out of its renewal unit failed");
                    }
                });
            }
            // Lost here (unproven in time) while its session may live on:
            // free it, unless someone took it already.
            LeaseEnd::Lost => {
                let (ledger, events) = (self.ledger.clone(), self.events.clone());
                let name = grant.name.clone();
                crate::runtime::spawn(async move {
                    if let Err(error) = release_marked(&ledger, &events, &name, &held).await {
                        tracing::debug!(%error, "freeing a lost lease failed");
                    }
                });
            }
        }
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        let detail = grant.detail::<MongoGrant>();
        let released = match self.hand_over(&grant.name, &detail.generation).await? {
            Handoff::Handed => true,
            Handoff::Lost => false,
            Handoff::NoTaker => {
                self.release_generation(&grant.name, &detail.generation)
                    .await?
            }
        };
        // Released or found lost: either way no longer held here.
        self.events.let_go_here(&self.key(&grant.name));
        if released {
            return Ok(());
        }
        Err(Error::Lost {
            name: grant.name.clone(),
            reason: "the lease expired and another holder took its slot, or an operator \
                     released it"
                .into(),
        })
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

    async fn close(&self) {}
}

#[async_trait]
impl AcquirePolicy for MongoBackend {
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
impl LossWatch for MongoBackend {
    async fn watch(&self, grant: &Grant) -> String {
        self.events.expired(&grant.holder).await;
        "the lease expired and another holder took its slot".into()
    }
}

impl LockEventSource for MongoBackend {
    fn lock_events(&self, _prefix: &str) -> LockFeed {
        LockFeed::live(self.events.subscribe())
    }
}

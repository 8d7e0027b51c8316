//! `mongodb://…`: locks on MongoDB and every MongoDB-wire server (FerretDB,
//! DocumentDB, Cosmos DB's Mongo API), safe because exclusion rests only on
//! unique `_id` inserts ([`ledger`]). Waiters wake on other clients' events
//! through a tailable cursor on a capped collection ([`events`]) or at the
//! earliest holder expiry, never on a fixed poll. Expiry is judged on the
//! server's clock ([`clock`]).
//!
//! Each lease is renewed with its own write (a document per lease), and its
//! loss shows as an `expired` event naming it or as a failed renewal.

mod clock;
mod config;
mod errors;
mod events;
mod inspect;
mod ledger;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::options::{ClientOptions, CollectionOptions, ReadConcern, WriteConcern};
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use config::MongoConfig;

use self::clock::ServerClock;
use self::events::EventLog;
use self::ledger::{doc_id, Generation, Ledger, Plan};
use crate::backend::{
    AcquireRequest, Attempt, Backend, Capabilities, ChangeMarker, Grant, RenewOutcome,
};
use crate::backends::retry::{race_backoff, random_u64};
use crate::error::{Error, Result};
use crate::lock_events::LockEventKind;

/// How many lost insert races one attempt tolerates before it waits.
const RACE_RETRIES: u32 = 8;
/// Most leases renewed by one batch of requests.
const RENEW_BATCH: usize = 500;

/// The private part of a Mongo grant.
struct MongoGrant {
    id: String,
    slot: i32,
    gen: i64,
    /// Renewals and the release of one lease never overlap: FerretDB applies
    /// updates as read-modify-write, so overlapping writes to one document
    /// could undo each other.
    writes: tokio::sync::Mutex<()>,
}

/// The `mongodb://` backend.
pub struct MongoBackend {
    ledger: Ledger,
    events: Arc<EventLog>,
    clock: ServerClock,
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
        let locks = db.collection_with_options(
            &config.collection,
            CollectionOptions::builder()
                .read_concern(ReadConcern::majority())
                .build(),
        );
        let ledger = Ledger::new(locks);
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
        })
    }

    /// One pass: survey, then try to insert the chosen generation.
    async fn attempt(&self, request: &AcquireRequest) -> Result<Option<Attempt>> {
        if request.limit > ledger::MAX_LIMIT {
            return Err(Error::invalid(format!(
                "the MongoDB backend serves semaphores of up to {} holders, not {}",
                ledger::MAX_LIMIT,
                request.limit
            )));
        }
        let version = self.events.version(&request.name);
        let surveyed = Instant::now();
        let survey = self.ledger.survey(&request.name, request.limit).await?;
        let now = self.clock.now_ms();
        let (slot, gen, replaces) =
            match survey.plan(request.limit, now, |n| (random_u64() % n as u64) as usize) {
                Plan::Mismatch { existing } => {
                    return Err(Error::LimitMismatch {
                        name: request.name.clone(),
                        requested: request.limit,
                        existing: Some(existing),
                    })
                }
                Plan::Busy { wake_at } => {
                    return Ok(Some(Attempt::Busy(ChangeMarker {
                        version,
                        retry_after: wake_at
                            .map(|at| Duration::from_millis(at.saturating_sub(now).max(1) as u64)),
                    })))
                }
                Plan::Take {
                    slot,
                    gen,
                    replaces,
                } => (slot, gen, replaces),
            };
        let ticket = if request.limit == 1 {
            None
        } else {
            let drawn = self.ledger.draw_ticket(
                &request.name,
                request.limit,
                survey.newest_ticket,
                surveyed,
            );
            Some(drawn.await?)
        };
        let token = ticket.unwrap_or(gen);
        if surveyed.elapsed() > ledger::FRESHNESS {
            return Ok(None); // the plan is too old to act on; survey again
        }
        let ttl_ms = request.ttl.as_millis() as i64;
        let generation = Generation {
            id: doc_id(&request.name, slot, gen),
            slot,
            gen,
            limit: request.limit,
            expires_at: self.clock.now_ms() + ttl_ms,
            released: false,
            token,
        };
        if !self
            .ledger
            .insert(&request.name, &generation, &request.value)
            .await?
        {
            return Ok(None); // someone else took this generation
        }
        let (overtaken, raced) = tokio::join!(
            self.ledger.newer_exists(&request.name, slot, gen),
            self.ledger.raced_limit(
                &request.name,
                request.limit,
                survey.newest_ticket,
                ticket,
                || self.clock.now_ms()
            )
        );
        if overtaken? {
            // We read an old state; a newer generation already exists.
            self.ledger.mark_released(&generation.id).await?;
            return Ok(None);
        }
        if let Some(existing) = raced? {
            // Someone took the lock with another limit at the same time.
            self.ledger.mark_released(&generation.id).await?;
            return Err(Error::LimitMismatch {
                name: request.name.clone(),
                requested: request.limit,
                existing: Some(existing),
            });
        }
        if let Some(expired) = &replaces {
            self.events
                .publish(
                    &request.name,
                    LockEventKind::Expired,
                    &expired.id,
                    expired.token,
                )
                .await;
        }
        self.events
            .publish(
                &request.name,
                LockEventKind::Acquired,
                &generation.id,
                token,
            )
            .await;
        // Head hints and garbage collection are off the caller's path.
        let (ledger, name, semaphore) =
            (self.ledger.clone(), request.name.clone(), request.limit > 1);
        crate::runtime::spawn(async move {
            ledger.advance(&name, slot, gen).await;
            if semaphore {
                ledger.advance(&name, ledger::TICKET_SLOT, token).await;
            }
        });
        Ok(Some(Attempt::Acquired(Grant {
            name: request.name.clone(),
            limit: request.limit,
            holder: generation.id.clone(),
            fencing_token: u64::try_from(token).ok(),
            ttl: request.ttl,
            proven_until: None,
            // One batched renewal for every lease of this client with this TTL.
            renewal_unit: Some(format!("mongodb-ttl-{}", request.ttl.as_millis())),
            detail: Arc::new(MongoGrant {
                id: generation.id,
                slot,
                gen,
                writes: tokio::sync::Mutex::new(()),
            }),
        })))
    }

    /// Renews a batch of leases (one TTL) in three requests: which are still
    /// unreleased, extend those, and whether a newer generation took any
    /// slot over. Holds every lease's write lock throughout, so no release
    /// interleaves (only a holder writes its document).
    async fn renew_batch(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        let details: Vec<&MongoGrant> = grants.iter().map(|g| g.detail::<MongoGrant>()).collect();
        let mut writing = Vec::with_capacity(details.len());
        for detail in &details {
            writing.push(detail.writes.lock().await);
        }
        let ids: Vec<String> = details.iter().map(|d| d.id.clone()).collect();
        let unreleased = self.ledger.present(&ids, true).await?;
        let live: Vec<String> = ids
            .iter()
            .filter(|id| unreleased.contains(*id))
            .cloned()
            .collect();
        let ttl = grants.first().map_or(Duration::ZERO, |g| g.ttl);
        let expires_at = self.clock.now_ms() + ttl.as_millis() as i64;
        self.ledger.extend_all(&live, expires_at).await?;
        let successors: Vec<String> = grants
            .iter()
            .zip(&details)
            .map(|(g, d)| doc_id(&g.name, d.slot, d.gen + 1))
            .collect();
        let taken = self.ledger.present(&successors, false).await?;
        Ok(grants
            .iter()
            .zip(ids.iter().zip(&successors))
            .map(|(grant, (id, successor))| {
                if !unreleased.contains(id) {
                    RenewOutcome::Lost {
                        reason: "the lease's document was released or removed".into(),
                    }
                } else if taken.contains(successor) {
                    RenewOutcome::Lost {
                        reason: "the lease expired and another holder took its slot".into(),
                    }
                } else {
                    RenewOutcome::Renewed { ttl: grant.ttl }
                }
            })
            .collect())
    }

    /// Checks, after a write to a lease's own document, that nobody took
    /// its slot over; the outcome for a renewal.
    async fn still_ours(&self, grant: &Grant, detail: &MongoGrant) -> Result<Option<String>> {
        Ok(self
            .ledger
            .newer_exists(&grant.name, detail.slot, detail.gen)
            .await?
            .then(|| "the lease expired and another holder took its slot".to_string()))
    }
}

#[async_trait]
impl Backend for MongoBackend {
    fn scheme(&self) -> &'static str {
        "mongodb"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            loss_watch: true,
            change_notifications: true,
            semaphores: true,
            shared_renewal: true,
            event_stream: true,
            inspection: true,
            server_wait: false,
            idle_limit_resets: true,
            outlives_connection: true,
        }
    }

    async fn try_acquire(&self, request: &AcquireRequest) -> Result<Attempt> {
        for attempt in 0..RACE_RETRIES {
            if let Some(outcome) = self.attempt(request).await? {
                return Ok(outcome);
            }
            race_backoff(attempt).await;
        }
        // Heavy contention: wait for the next event, then try again.
        Ok(Attempt::Busy(ChangeMarker {
            version: self.events.version(&request.name),
            retry_after: Some(Duration::from_millis(50)),
        }))
    }

    async fn wait_for_change(
        &self,
        request: &AcquireRequest,
        marker: ChangeMarker,
        until: Option<Instant>,
    ) -> Result<()> {
        let expiry = marker.retry_after.map(|after| Instant::now() + after);
        let wake = [until, expiry].into_iter().flatten().min();
        self.events
            .wait_past(&request.name, marker.version, wake)
            .await;
        Ok(())
    }

    async fn renew(&self, grants: &[Arc<Grant>]) -> Result<Vec<RenewOutcome>> {
        let mut outcomes = Vec::with_capacity(grants.len());
        for batch in grants.chunks(RENEW_BATCH) {
            outcomes.extend(self.renew_batch(batch).await?);
        }
        Ok(outcomes)
    }

    async fn status(&self, name: &str) -> Result<crate::inspect::LockStatus> {
        self.inspect_status(name).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inspect_list(prefix).await
    }

    async fn force_release(&self, name: &str, holder: Option<&str>) -> Result<u32> {
        self.inspect_force_release(name, holder).await
    }

    async fn renew_holder(&self, name: &str, holder: &str, ttl: Duration) -> Result<Duration> {
        self.inspect_renew_holder(name, holder, ttl).await
    }

    async fn release(&self, grant: &Grant) -> Result<()> {
        let detail = grant.detail::<MongoGrant>();
        let _writing = detail.writes.lock().await;
        let lost = |reason: &str| Error::Lost {
            name: grant.name.clone(),
            reason: reason.to_string(),
        };
        // Check first: once marked released, the slot is free and a waiter
        // may rightly take it before a later check could run.
        if let Some(reason) = self.still_ours(grant, detail).await? {
            return Err(lost(&reason));
        }
        if !self.ledger.mark_released(&detail.id).await? {
            return Err(lost("the lease's document was released or removed"));
        }
        self.events
            .publish(
                &grant.name,
                LockEventKind::Released,
                &detail.id,
                grant.fencing_token.unwrap_or(0) as i64,
            )
            .await;
        Ok(())
    }

    async fn watch(&self, grant: &Grant) -> String {
        let mut events = self.events.subscribe();
        loop {
            match events.recv().await {
                Ok(event)
                    if event.kind == LockEventKind::Expired && event.holder == grant.holder =>
                {
                    return "the lease expired and another holder took its slot".into()
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                // The log is gone with the client; renewals decide from here.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    fn lock_events(&self, _prefix: &str) -> Option<crate::LockFeed> {
        Some(crate::LockFeed::live(self.events.subscribe()))
    }
}

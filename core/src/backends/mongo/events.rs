//! The events log: a capped collection every client writes its lock events
//! to, and one tailable, awaitData cursor per process (and server, database
//! and collection) reads. A release in it frees a slot: it gives one of this
//! process's waiters on that name a turn ([`super::waiters`]), no polling.
//! It also feeds the public lock event stream ([`crate::Client::watch`]),
//! what the process knows of names ([`super::known`]) and the loss watches
//! of leases taken over after expiry.
//!
//! Events are written off the caller's path, in order, by one publishing
//! task per log that sends whatever queued up as one `insert_many`.
//!
//! FerretDB v1 closes a tailable cursor whose first batch is shorter than
//! its batch size, so the cursor opens with batch size 1 on a collection
//! that is never empty (a sentinel document); later batches (`getMore`, run
//! by hand to set their size) take up to 256 events. The cursor has no
//! server-side filter: FerretDB evaluates a filter on every rescan, which
//! made delivery ~6× slower; events older than the start time are skipped
//! client-side instead. After any error the cursor is reopened, skipping
//! events already delivered.
//!
//! FerretDB also rescans the whole capped collection for every open tailable
//! cursor about every 10 ms (and caps it by bytes, not by document count),
//! so the collection is kept small in bytes and clients of
//! one process that use the same collection share one log and one cursor
//! ([`EventLog::shared`]). A missed event costs only a late wake-up: the
//! first waiter also surveys when the holder's lease would run out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Client, Collection, Database};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::clock::ServerClock;
use super::errors;
use super::known::{Freed, Known, NameKey};
use super::plan::{Generation, EXPIRY_ALLOWANCE_MS};
use super::waiters::Waiters;
use crate::error::{Error, Result};
use crate::model::{LockEvent, LockEventKind};
use crate::runtime;

/// Size of the capped collection: small, because FerretDB rescans it.
const CAPPED_BYTES: i64 = 64 * 1024;
const CAPPED_DOCS: i64 = 128;
/// How long one `getMore` waits for new events.
const AWAIT: Duration = Duration::from_secs(1);
/// Events per `getMore`.
const BATCH: i32 = 256;
/// How far back a freshly opened cursor starts, for clock-estimate error.
const START_SLACK_MS: i64 = 1000;
/// How long `open` waits for the cursor before giving up.
const OPEN_LIMIT: Duration = Duration::from_secs(15);
const SENTINEL: &str = "polylock-sentinel";
/// Code for "collection already exists".
const NAMESPACE_EXISTS: i32 = 48;
/// Lock events a slow consumer may fall behind by.
const BACKLOG: usize = 4096;
/// Events one `insert_many` writes at most.
const PUBLISH_BATCH: usize = 128;

/// The events log of the clients of one process that share a server,
/// database and events collection.
pub(crate) struct EventLog {
    client: Client,
    db: Database,
    coll: Collection<Document>,
    clock: ServerClock,
    public: broadcast::Sender<LockEvent>,
    /// Events waiting for the publishing task, each with whom to tell once
    /// it is written.
    outbox: mpsc::UnboundedSender<(Document, Option<oneshot::Sender<()>>)>,
    /// This process's waiters, by name.
    pub(crate) waiters: Waiters,
    /// What this process knows of names.
    pub(crate) known: Known,
    /// Leases whose takeover after expiry their holder should hear of, by
    /// holder id.
    expiry_watches: Mutex<ExpiryWatches>,
    /// How many leases this process holds, per name, and with which limit.
    held_here: Mutex<HashMap<NameKey, HeldHere>>,
}

/// The leases this process holds on one name.
#[derive(Clone, Copy)]
struct HeldHere {
    count: u32,
    /// The limit of the newest take (every holder here shares it, or the
    /// takes would have been refused).
    limit: u32,
}

/// Loss watches by holder id: (watch id, how to tell it).
#[derive(Default)]
struct ExpiryWatches {
    next_id: u64,
    by_holder: HashMap<String, Vec<(u64, oneshot::Sender<()>)>>,
}

/// One lock event to write: which generation did what.
pub(crate) struct Published<'a> {
    /// The lock collection.
    pub coll: &'a str,
    pub name: &'a str,
    pub kind: LockEventKind,
    /// The lease's holder id (its generation's `_id`).
    pub holder: &'a str,
    pub token: i64,
    /// For a release: the release marker, which frees the slot (for a
    /// lease handed over, the released generation itself).
    pub generation: &'a Generation,
    /// A release that handed the lease to a waiter: it frees no slot.
    pub handed: bool,
}

/// Which log a client needs: the same server, database and collection share one.
pub(crate) type LogKey = (String, String, String);

fn open_logs() -> MutexGuard<'static, HashMap<LogKey, Weak<EventLog>>> {
    static LOGS: OnceLock<Mutex<HashMap<LogKey, Weak<EventLog>>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl EventLog {
    /// The process's log for `key`, opened with `client` when none is open.
    pub(crate) async fn shared(
        key: LogKey,
        client: Client,
        db: Database,
        name: &str,
        clock: ServerClock,
    ) -> Result<Arc<Self>> {
        if let Some(log) = open_logs().get(&key).and_then(Weak::upgrade) {
            return Ok(log);
        }
        let log = EventLog::open(client, db, name, clock).await?;
        let mut logs = open_logs();
        logs.retain(|_, log| log.strong_count() > 0);
        // Two clients may have opened one at once; keep the first.
        match logs.get(&key).and_then(Weak::upgrade) {
            Some(first) => Ok(first),
            None => {
                logs.insert(key, Arc::downgrade(&log));
                Ok(log)
            }
        }
    }

    /// Makes sure the capped collection and its sentinel exist, starts the
    /// tailing task and returns once its cursor is open.
    async fn open(
        client: Client,
        db: Database,
        name: &str,
        clock: ServerClock,
    ) -> Result<Arc<Self>> {
        let (outbox, queued) = mpsc::unbounded_channel();
        let log = Arc::new(EventLog {
            coll: db.collection(name),
            client,
            db,
            clock,
            public: broadcast::channel(BACKLOG).0,
            outbox,
            waiters: Waiters::default(),
            known: Known::default(),
            expiry_watches: Mutex::new(ExpiryWatches::default()),
            held_here: Mutex::default(),
        });
        runtime::spawn(publish_all(log.coll.clone(), queued));
        log.ensure_collection().await?;
        let (ready, opened) = oneshot::channel();
        runtime::spawn(tail(
            Arc::downgrade(&log),
            log.clock.now_ms() - START_SLACK_MS,
            ready,
        ));
        match tokio::time::timeout(OPEN_LIMIT, opened).await {
            Ok(Ok(())) => Ok(log),
            _ => Err(Error::Connection(
                "could not open a tailable cursor on the mongodb events collection".into(),
            )),
        }
    }

    async fn ensure_collection(&self) -> Result<()> {
        let created = self
            .db
            .create_collection(self.coll.name())
            .capped(true)
            .size(CAPPED_BYTES as u64)
            .max(CAPPED_DOCS as u64)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if errors::code(&e) == Some(NAMESPACE_EXISTS) => self.check_capped().await?,
            Err(e) => return Err(errors::map(e)),
        }
        // The sentinel may have been pushed out of the capped collection.
        match self
            .coll
            .insert_one(doc! { "_id": SENTINEL, "sentinel": true })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(errors::map(e)),
        }
    }

    /// An events collection that exists must be capped (a plain insert into
    /// a missing one makes an ordinary collection, which no tailable cursor
    /// can follow).
    async fn check_capped(&self) -> Result<()> {
        let name = self.coll.name();
        let mut found = self
            .db
            .list_collections()
            .filter(doc! { "name": name })
            .await
            .map_err(errors::map)?;
        let spec = found.try_next().await.map_err(errors::map)?;
        match spec {
            Some(spec) if spec.options.capped != Some(true) => Err(Error::Backend(format!(
                "the mongodb events collection {name:?} exists but is not capped; drop it \
                 (polylock creates it capped) or name another with events_collection="
            ))),
            _ => Ok(()),
        }
    }

    /// Queues an event for every client to see; the publishing task writes
    /// it. A failed write is logged, not returned: waiters also survey when
    /// a holder's lease would run out.
    pub(crate) fn publish(&self, event: Published<'_>) {
        let _ = self.outbox.send((self.event_doc(&event), None));
    }

    /// Like [`Self::publish`], and resolves once the event (and every event
    /// queued before it) is written, or its write failed. A release waits
    /// for its event: other processes' waiters hear of it even when this
    /// process ends right after (the CLI's `run`, a short script).
    pub(crate) async fn published(&self, event: Published<'_>) {
        let (written, done) = oneshot::channel();
        if self
            .outbox
            .send((self.event_doc(&event), Some(written)))
            .is_ok()
        {
            let _ = done.await;
        }
    }

    fn event_doc(&self, event: &Published<'_>) -> Document {
        let kind = match event.kind {
            LockEventKind::Acquired => "acquired",
            LockEventKind::Released => "released",
            _ => "expired",
        };
        let g = event.generation;
        doc! {
            "coll": event.coll,
            "name": event.name,
            "kind": kind,
            "holder": event.holder,
            "token": event.token,
            "slot": g.slot,
            "gen": g.gen,
            "limit": g.limit as i32,
            "expires_at": g.expires_at,
            "at": self.clock.now_ms(),
            "handed": event.handed,
        }
    }

    /// This process released `marker`'s slot of `key`: its waiters hear at
    /// once, without waiting for the events log.
    pub(crate) fn released_here(&self, key: &NameKey, marker: &Generation) {
        self.slot_freed(
            key,
            Freed {
                slot: marker.slot,
                marker: marker.gen,
                limit: marker.limit,
                at_ms: self.clock.now_ms(),
            },
        );
    }

    /// A release (here or heard of) freed a slot of `key`: one waiter gets
    /// a turn, and the next acquisition here may take it without a survey.
    fn slot_freed(&self, key: &NameKey, freed: Freed) {
        self.known.released(key, freed);
        self.waiters.freed(key, freed);
    }

    /// This process took `taken` on `key`: its waiters survey when it
    /// would run out, at the latest.
    pub(crate) fn taken_here(&self, key: &NameKey, taken: &Generation) {
        self.known.saw(key, taken.slot, taken.gen);
        let mut held = self.held();
        let here = held.entry(key.clone()).or_insert(HeldHere {
            count: 0,
            limit: taken.limit,
        });
        here.count += 1;
        here.limit = taken.limit;
        drop(held);
        self.waiters
            .held_until(key, self.local_at(taken.expires_at));
    }

    /// A lease this process held on `key` ended (released, lost or
    /// abandoned).
    pub(crate) fn let_go_here(&self, key: &NameKey) {
        let mut held = self.held();
        if let Some(here) = held.get_mut(key) {
            here.count = here.count.saturating_sub(1);
            if here.count == 0 {
                held.remove(key);
            }
        }
    }

    /// True when this process holds every one of `limit` slots of `key`
    /// with that same limit: a new waiter then hears of the next release
    /// here, with no read. (A caller with another limit surveys, and hears
    /// of the mismatch.)
    pub(crate) fn full_here(&self, key: &NameKey, limit: u32) -> bool {
        self.held()
            .get(key)
            .is_some_and(|here| here.limit == limit && here.count >= limit)
    }

    fn held(&self) -> MutexGuard<'_, HashMap<NameKey, HeldHere>> {
        self.held_here.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The local instant of server time `at_ms`, past the expiry allowance
    /// (a holder is live that long after its expiry).
    pub(crate) fn local_at(&self, at_ms: i64) -> tokio::time::Instant {
        let ahead = ms_until_expiry(at_ms, self.clock.now_ms());
        tokio::time::Instant::now() + std::time::Duration::from_millis(ahead)
    }

    /// Resolves once an event says `holder`'s lease expired and another
    /// holder took its slot.
    pub(crate) async fn expired(&self, holder: &str) {
        let (told, heard) = oneshot::channel();
        let id = {
            let mut watches = self.watches();
            watches.next_id += 1;
            let id = watches.next_id;
            let list = watches.by_holder.entry(holder.to_string()).or_default();
            list.push((id, told));
            id
        };
        let _forget = Forget {
            log: self,
            holder,
            id,
        };
        if heard.await.is_err() {
            // The log is going away; renewals decide from here.
            std::future::pending::<()>().await;
        }
    }

    fn watches(&self) -> MutexGuard<'_, ExpiryWatches> {
        self.expiry_watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every lock event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LockEvent> {
        self.public.subscribe()
    }

    fn deliver(&self, doc: &Document) {
        let Some(read) = read_event(doc) else {
            return; // the sentinel, or something that is not ours
        };
        if let Some((key, effect)) = read.effect {
            match effect {
                EventEffect::Handed => {}
                EventEffect::Freed(freed) => self.slot_freed(&key, freed),
                EventEffect::Taken {
                    slot,
                    gen,
                    expires_at,
                } => {
                    self.known.saw(&key, slot, gen);
                    if let Some(expires_at) = expires_at {
                        self.waiters.held_until(&key, self.local_at(expires_at));
                    }
                }
                EventEffect::Expired => {
                    let told = self.watches().by_holder.remove(&read.event.holder);
                    for (_, told) in told.into_iter().flatten() {
                        let _ = told.send(());
                    }
                }
            }
        }
        let _ = self.public.send(read.event);
    }
}

/// What one event document says, read without acting on it.
#[derive(Debug)]
pub(crate) struct EventRead {
    /// The lock event it publishes.
    pub event: LockEvent,
    /// What it means for this process's waiters and loss watches, when it
    /// names its collection, slot and generation.
    pub effect: Option<(NameKey, EventEffect)>,
}

/// What an event means for this process's waiters and loss watches.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EventEffect {
    /// A lease handed over frees nothing: the next generation, already
    /// taken, follows in an `acquired` event.
    Handed,
    /// A release freed a slot.
    Freed(Freed),
    /// A slot was taken; its holder's expiry (server ms), when given.
    Taken {
        slot: i32,
        gen: i64,
        expires_at: Option<i64>,
    },
    /// The holder's lease expired and another holder took its slot.
    Expired,
}

/// Reads an event document; `None` for the sentinel or a document that is
/// not an event.
pub(crate) fn read_event(doc: &Document) -> Option<EventRead> {
    let (Ok(name), Ok(kind), Ok(holder)) = (
        doc.get_str("name"),
        doc.get_str("kind"),
        doc.get_str("holder"),
    ) else {
        return None;
    };
    let kind = match kind {
        "acquired" => LockEventKind::Acquired,
        "released" => LockEventKind::Released,
        _ => LockEventKind::Expired,
    };
    let effect = match (doc.get_str("coll"), doc.get_i32("slot"), doc.get_i64("gen")) {
        (Ok(coll), Ok(slot), Ok(gen)) => {
            let key = (coll.to_string(), name.to_string());
            let effect = match kind {
                // Only a release frees a slot; waiters survey at a
                // holder's expiry on their own.
                LockEventKind::Released if doc.get_bool("handed") == Ok(true) => {
                    EventEffect::Handed
                }
                LockEventKind::Released => EventEffect::Freed(Freed {
                    slot,
                    marker: gen,
                    limit: u32::try_from(doc.get_i32("limit").unwrap_or(1)).unwrap_or(1),
                    at_ms: doc.get_i64("at").unwrap_or(0),
                }),
                LockEventKind::Acquired => EventEffect::Taken {
                    slot,
                    gen,
                    expires_at: doc.get_i64("expires_at").ok(),
                },
                _ => EventEffect::Expired,
            };
            Some((key, effect))
        }
        _ => None,
    };
    Some(EventRead {
        event: LockEvent {
            name: name.to_string(),
            kind,
            holder: holder.to_string(),
            fencing_token: doc
                .get_i64("token")
                .ok()
                .and_then(|t| u64::try_from(t).ok()),
        },
        effect,
    })
}

/// How long from server time `now_ms` until server time `at_ms` plus the
/// expiry allowance, in ms (at least 1). Saturates: an expiry read from a
/// document may be any number.
pub(crate) fn ms_until_expiry(at_ms: i64, now_ms: i64) -> u64 {
    at_ms
        .saturating_add(EXPIRY_ALLOWANCE_MS)
        .saturating_sub(now_ms)
        .max(1) as u64
}

/// Removes an expiry watch when its waiter goes.
struct Forget<'a> {
    log: &'a EventLog,
    holder: &'a str,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut watches = self.log.watches();
        if let Some(list) = watches.by_holder.get_mut(self.holder) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                watches.by_holder.remove(self.holder);
            }
        }
    }
}

/// The publishing task: writes queued events in order, as many as queued
/// up in one request, until the log is gone.
async fn publish_all(
    coll: Collection<Document>,
    mut queued: mpsc::UnboundedReceiver<(Document, Option<oneshot::Sender<()>>)>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut told = Vec::new();
        let docs: Vec<Document> = batch
            .drain(..)
            .map(|(doc, written)| {
                told.extend(written);
                doc
            })
            .collect();
        if let Err(error) = coll.insert_many(docs).await {
            tracing::warn!(%error, "writing lock events failed; waiters fall back to expiry");
        }
        for written in told {
            let _ = written.send(());
        }
    }
}

/// Remembers what was delivered at the latest event time, so a reopened
/// cursor (which starts at that time again) skips it.
pub(crate) struct Position {
    at: i64,
    seen: HashSet<String>,
}

impl Position {
    /// A position at event time `at`, with nothing delivered there yet.
    pub(crate) fn new(at: i64) -> Self {
        Position {
            at,
            seen: HashSet::new(),
        }
    }

    /// True if `doc` is new; records it.
    pub(crate) fn advance(&mut self, doc: &Document) -> bool {
        let Ok(at) = doc.get_i64("at") else {
            return false;
        };
        let id = match doc.get("_id") {
            Some(Bson::ObjectId(id)) => id.to_hex(),
            Some(other) => other.to_string(),
            None => return false,
        };
        if at < self.at || (at == self.at && self.seen.contains(&id)) {
            return false;
        }
        if at > self.at {
            self.at = at;
            self.seen.clear();
        }
        self.seen.insert(id);
        true
    }
}

/// The tailing task: runs until the log is dropped. A cursor that was open
/// and then ended (capped-collection trimming ends cursors routinely) is
/// reopened at once; only failures to open back off, up to 5 s.
async fn tail(log: Weak<EventLog>, start: i64, ready: oneshot::Sender<()>) {
    let mut position = Position::new(start);
    let mut ready = Some(ready);
    let mut retry = Duration::from_millis(100);
    loop {
        let Some((client, db, coll)) = log
            .upgrade()
            .map(|l| (l.client.clone(), l.db.clone(), l.coll.name().to_string()))
        else {
            return;
        };
        let mut opened = false;
        match follow(
            &client,
            &db,
            &coll,
            &log,
            &mut position,
            &mut ready,
            &mut opened,
        )
        .await
        {
            Ok(()) => return, // the log was dropped
            Err(error) if opened => {
                tracing::debug!(%error, "mongodb events cursor ended; reopening");
                retry = Duration::from_millis(100);
            }
            Err(error) => {
                tracing::debug!(%error, "opening the mongodb events cursor failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
                if let Some(strong) = log.upgrade() {
                    let _ = strong.ensure_collection().await;
                }
            }
        }
    }
}

/// Opens the cursor and follows it until an error (`Err`) or until the log
/// is dropped (`Ok`); sets `opened` once the cursor is open. Holds the log
/// only while delivering a batch.
async fn follow(
    client: &Client,
    db: &Database,
    coll: &str,
    log: &Weak<EventLog>,
    position: &mut Position,
    ready: &mut Option<oneshot::Sender<()>>,
    opened: &mut bool,
) -> Result<()> {
    let mut session = client.start_session().await.map_err(errors::map)?;
    let found = db
        .run_command(doc! {
            "find": coll,
            "tailable": true,
            "awaitData": true,
            "batchSize": 1,
        })
        .session(&mut session)
        .await
        .map_err(errors::map)?;
    let (mut cursor_id, first) = batch(&found, "firstBatch")?;
    let Some(strong) = log.upgrade() else {
        return Ok(());
    };
    for doc in &first {
        if position.advance(doc) {
            strong.deliver(doc);
        }
    }
    drop(strong);
    if cursor_id == 0 {
        return Err(Error::Backend("the events cursor closed at once".into()));
    }
    *opened = true;
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    loop {
        let reply = db
            .run_command(doc! {
                "getMore": cursor_id,
                "collection": coll,
                "batchSize": BATCH,
                "maxTimeMS": AWAIT.as_millis() as i64,
            })
            .session(&mut session)
            .await
            .map_err(errors::map)?;
        let Some(strong) = log.upgrade() else {
            return Ok(());
        };
        let (next_id, docs) = batch(&reply, "nextBatch")?;
        for doc in &docs {
            if position.advance(doc) {
                strong.deliver(doc);
            }
        }
        if next_id == 0 {
            return Err(Error::Backend("the events cursor was closed".into()));
        }
        cursor_id = next_id;
    }
}

/// The cursor id and documents of a `find` or `getMore` reply.
pub(crate) fn batch(reply: &Document, field: &str) -> Result<(i64, Vec<Document>)> {
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| Error::Backend("a cursor reply without a cursor".into()))?;
    let id = cursor.get_i64("id").unwrap_or(0);
    let docs = cursor
        .get_array(field)
        .map(|docs| {
            docs.iter()
                .filter_map(|d| d.as_document().cloned())
                .collect()
        })
        .unwrap_or_default();
    Ok((id, docs))
}

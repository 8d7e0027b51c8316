//! The events log: a capped collection every client writes its lock events
//! to, and one tailable, awaitData cursor per client reads. It wakes waiters
//! when a lock is released (no polling) and feeds the public lock event
//! stream ([`crate::Client::watch`]).
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
//! ([`EventLog::shared`]). A missed event costs only a late wake-up: waiters
//! also wake when the holder's lease runs out.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::{Client, Collection, Database};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::Instant;

use super::clock::ServerClock;
use super::errors;
use crate::error::{Error, Result};
use crate::lock_events::{LockEvent, LockEventKind};
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

/// The events log of one client.
pub(crate) struct EventLog {
    client: Client,
    db: Database,
    coll: Collection<Document>,
    clock: ServerClock,
    public: broadcast::Sender<LockEvent>,
    /// How many releases each name has seen; waiters compare against it.
    versions: Mutex<HashMap<String, u64>>,
    /// Bumped on every release: wakes waiters to compare their name's version.
    any: watch::Sender<u64>,
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
        let log = Arc::new(EventLog {
            coll: db.collection(name),
            client,
            db,
            clock,
            public: broadcast::channel(BACKLOG).0,
            versions: Mutex::new(HashMap::new()),
            any: watch::channel(0).0,
        });
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
            Err(e) if errors::code(&e) == Some(NAMESPACE_EXISTS) => {}
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

    fn versions(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes an event for every client to see. A failure is logged, not
    /// returned: waiters also wake when a holder's lease runs out.
    pub(crate) async fn publish(&self, name: &str, kind: LockEventKind, holder: &str, token: i64) {
        let kind = match kind {
            LockEventKind::Acquired => "acquired",
            LockEventKind::Released => "released",
            _ => "expired",
        };
        let event = doc! {
            "name": name,
            "kind": kind,
            "holder": holder,
            "token": token,
            "at": self.clock.now_ms(),
        };
        if let Err(error) = self.coll.insert_one(event).await {
            tracing::warn!(%error, name, "writing a lock event failed; waiters fall back to expiry");
        }
    }

    /// How many releases `name` has seen so far.
    pub(crate) fn version(&self, name: &str) -> u64 {
        self.versions().get(name).copied().unwrap_or(0)
    }

    /// Returns once `name` has seen a release past `version`, or at `until`.
    pub(crate) async fn wait_past(&self, name: &str, version: u64, until: Option<Instant>) {
        let mut any = self.any.subscribe();
        loop {
            any.borrow_and_update();
            if self.version(name) != version {
                return;
            }
            match until {
                Some(until) => {
                    if tokio::time::timeout_at(until, any.changed()).await.is_err() {
                        return;
                    }
                }
                None => {
                    if any.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Every lock event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LockEvent> {
        self.public.subscribe()
    }

    fn deliver(&self, doc: &Document) {
        let (Ok(name), Ok(kind), Ok(holder)) = (
            doc.get_str("name"),
            doc.get_str("kind"),
            doc.get_str("holder"),
        ) else {
            return; // the sentinel, or something that is not ours
        };
        let kind = match kind {
            "acquired" => LockEventKind::Acquired,
            "released" => LockEventKind::Released,
            _ => LockEventKind::Expired,
        };
        // Only a release frees a slot; acquisitions and takeovers wake nobody
        // (waiters wake at the holder's expiry on their own).
        if kind == LockEventKind::Released {
            *self.versions().entry(name.to_string()).or_insert(0) += 1;
            self.any.send_modify(|n| *n += 1);
        }
        let _ = self.public.send(LockEvent {
            name: name.to_string(),
            kind,
            holder: holder.to_string(),
            fencing_token: doc
                .get_i64("token")
                .ok()
                .and_then(|t| u64::try_from(t).ok()),
        });
    }
}

/// Remembers what was delivered at the latest event time, so a reopened
/// cursor (which starts at that time again) skips it.
struct Position {
    at: i64,
    seen: HashSet<String>,
}

impl Position {
    /// True if `doc` is new; records it.
    fn advance(&mut self, doc: &Document) -> bool {
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
    let mut position = Position {
        at: start,
        seen: HashSet::new(),
    };
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
fn batch(reply: &Document, field: &str) -> Result<(i64, Vec<Document>)> {
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

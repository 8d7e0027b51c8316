//! The insert-only generation ledger: the one lock design that is safe on
//! every MongoDB-wire server, because it relies only on the atomicity of
//! inserting a unique `_id` (duplicate → error 11000), not on conditional
//! updates (FerretDB v1 applies those without atomicity).
//!
//! A lock of limit N has N slots; each slot has a ledger of generations,
//! documents `{_id: "<name>/<slot>/<gen, 20 digits>", name, slot, gen,
//! limit, holder value, expires_at (server ms), released, token}`. To take a
//! slot, find its newest generation; if it is released or expired, insert
//! generation + 1. Winning the insert is winning the slot; afterwards the
//! winner checks that generation + 2 does not exist (which catches a
//! contender that read long ago). Renew and release write only the holder's
//! own document.
//!
//! Every access is by exact `_id`, the only lookup FerretDB v1 serves
//! without scanning the collection. That works because a slot's existing
//! generations always form one contiguous range, so "did anyone take my slot
//! after me" is "does g + 1 exist", and the newest generation is found by
//! stepping forward from a hint: the slot's head document `{_id:
//! "<name>/<slot>/head", gen}`, rewritten (best effort) after every take. No
//! head and no generation 1 means the slot was never used. A head older than
//! the range (a delayed writer can set it back) falls back to one query.
//!
//! Contiguity needs one more rule, because a deleted generation could be
//! inserted again by a contender that surveyed long before: garbage
//! collection deletes generation g − 2 only [`GC_DELAY`] after g was taken,
//! and an attempt inserts only within [`FRESHNESS`] of starting its survey.
//! A contender that planned generation k surveyed before k existed, so k was
//! deleted at least `GC_DELAY` after that survey: far past the attempt's
//! freshness. (Only a process frozen for almost a minute between that check
//! and its insert could still re-insert; its token would then be lower than
//! the current holder's, which fencing rejects downstream.)
//!
//! Fencing tokens: a mutex's token is its generation. A semaphore draws a
//! token from a per-name ticket ledger (slot -1) the same way, before
//! inserting its slot generation.
//!
//! Limits: every ticket records its drawer's limit, and every survey (mutex
//! or semaphore) reads the newest ticket, so a survey also covers the slots
//! of the last semaphore limit in use and sees a live holder of another
//! limit wherever it sits. Acquisitions that race across limits are caught
//! after the insert (see [`Ledger::raced_limit`]): each side writes before
//! it reads where the other writes, so of two racers at least one sees the
//! other and backs out (both may). Races among more than [`RACE_WINDOW`]
//! semaphore acquisitions with different limits are caught on a
//! best-effort basis only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::TryStreamExt;

use mongodb::bson::{doc, Document};
use mongodb::Collection;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::errors;
use crate::error::{Error, Result};

/// How long after a survey an attempt may still insert what it planned.
pub(crate) const FRESHNESS: Duration = Duration::from_secs(5);
/// How long after generation g was taken generation g − 2 is deleted.
pub(crate) const GC_DELAY: Duration = Duration::from_secs(60);
/// Deletions waiting for their time, at most (beyond: left in place).
const GC_BACKLOG: usize = 100_000;

/// How many lost ticket races a semaphore acquisition tolerates.
const TICKET_RETRIES: u32 = 64;

/// The pseudo-slot of a name's ticket ledger.
pub(crate) const TICKET_SLOT: i32 = -1;

/// The largest semaphore limit this backend serves: every survey reads
/// each slot, so a limit is a per-acquisition cost.
pub(crate) const MAX_LIMIT: u32 = 1024;

/// How many tickets newer than its survey an acquisition inspects for
/// other limits (beyond: it surveys up to [`MAX_LIMIT`]).
const RACE_TICKETS: i64 = 64;

/// How many tickets up to its survey's newest a semaphore acquisition
/// inspects for racers of other limits.
const RACE_WINDOW: i64 = 8;

/// How long past its expiry a holder is still treated as live by others:
/// covers the error of the clock-offset estimates.
pub(crate) const EXPIRY_ALLOWANCE_MS: i64 = 250;

/// The `_id` of a slot's head hint.
pub(crate) fn head_id(name: &str, slot: i32) -> String {
    format!("{name}/{slot}/head")
}

/// The `_id` of generation `gen` of `slot` of `name`.
pub(crate) fn doc_id(name: &str, slot: i32, gen: i64) -> String {
    format!("{name}/{slot}/{gen:020}")
}

/// One generation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    pub id: String,
    pub slot: i32,
    pub gen: i64,
    pub limit: u32,
    pub expires_at: i64,
    pub released: bool,
    pub token: i64,
}

impl Generation {
    fn from_doc(doc: &Document) -> Option<Self> {
        Some(Generation {
            id: doc.get_str("_id").ok()?.to_string(),
            slot: doc.get_i32("slot").ok()?,
            gen: doc.get_i64("gen").ok()?,
            limit: u32::try_from(doc.get_i32("limit").unwrap_or(1)).unwrap_or(1),
            expires_at: doc.get_i64("expires_at").unwrap_or(0),
            released: doc.get_bool("released").unwrap_or(false),
            token: doc.get_i64("token").unwrap_or(0),
        })
    }

    /// Held by someone at server time `now`.
    pub(crate) fn is_live(&self, now: i64) -> bool {
        !self.released && self.expires_at + EXPIRY_ALLOWANCE_MS > now
    }
}

/// What one read of a name's documents says.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// The newest generation of each slot (slot ≥ 0).
    pub newest: BTreeMap<i32, Generation>,
    /// The newest ticket drawn (0 if none).
    pub newest_ticket: i64,
    /// The limit of the semaphore that drew the newest ticket (0 if none).
    pub ticket_limit: u32,
}

/// What to do after a survey.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The lock is held with another limit.
    Mismatch { existing: u32 },
    /// Every slot is held; the first may free up by expiry at `wake_at`.
    Busy { wake_at: Option<i64> },
    /// Insert generation `gen` of `slot`; `replaces` is the expired holder
    /// being taken over, if any.
    Take {
        slot: i32,
        gen: i64,
        replaces: Option<Generation>,
    },
}

impl Survey {
    pub(crate) fn from_generations(generations: impl IntoIterator<Item = Generation>) -> Self {
        let mut survey = Survey::default();
        for generation in generations {
            if generation.slot == TICKET_SLOT {
                if generation.gen > survey.newest_ticket {
                    survey.newest_ticket = generation.gen;
                    survey.ticket_limit = generation.limit;
                }
                continue;
            }
            match survey.newest.get(&generation.slot) {
                Some(known) if known.gen >= generation.gen => {}
                _ => {
                    survey.newest.insert(generation.slot, generation);
                }
            }
        }
        survey
    }

    /// The limit of a live holder whose limit is not `limit`, if any.
    pub(crate) fn other_limit(&self, limit: u32, now: i64) -> Option<u32> {
        self.newest
            .values()
            .find(|g| g.is_live(now) && g.limit != limit)
            .map(|g| g.limit)
    }

    /// Chooses a free slot of `limit` (`pick` picks among several), or says
    /// why there is none, at server time `now`.
    pub(crate) fn plan(&self, limit: u32, now: i64, pick: impl FnOnce(usize) -> usize) -> Plan {
        if let Some(existing) = self.other_limit(limit, now) {
            return Plan::Mismatch { existing };
        }
        let live: Vec<&Generation> = self.newest.values().filter(|g| g.is_live(now)).collect();
        let free: Vec<i32> = (0..limit as i32)
            .filter(|slot| !self.newest.get(slot).is_some_and(|g| g.is_live(now)))
            .collect();
        if free.is_empty() {
            return Plan::Busy {
                wake_at: live
                    .iter()
                    .map(|g| g.expires_at + EXPIRY_ALLOWANCE_MS)
                    .min(),
            };
        }
        let slot = free[pick(free.len()) % free.len()];
        let previous = self.newest.get(&slot);
        Plan::Take {
            slot,
            gen: previous.map_or(1, |g| g.gen + 1),
            replaces: previous.filter(|g| !g.released).cloned(),
        }
    }
}

/// The lock collection (cheap to clone).
#[derive(Clone)]
pub(crate) struct Ledger {
    coll: Collection<Document>,
    /// Deletions due later, in order: (when, `_id`).
    collector: mpsc::Sender<(Instant, String)>,
}

impl Ledger {
    /// The ledger on `coll`, with its collector task (which ends with the
    /// last clone of the ledger).
    pub(crate) fn new(coll: Collection<Document>) -> Self {
        let (collector, due) = mpsc::channel(GC_BACKLOG);
        crate::runtime::spawn(collect(coll.clone(), due));
        Ledger { coll, collector }
    }

    /// Creates the index every read of a name uses.
    pub(crate) async fn ensure_index(&self) -> Result<()> {
        let index = mongodb::IndexModel::builder()
            .keys(doc! { "name": 1, "slot": 1, "gen": -1 })
            .build();
        self.coll.create_index(index).await.map_err(errors::map)?;
        Ok(())
    }

    /// The newest ticket and the newest generation of each slot of `name`
    /// below `limit` and below the newest ticket's limit, read concurrently.
    pub(crate) async fn survey(&self, name: &str, limit: u32) -> Result<Survey> {
        let slots = (TICKET_SLOT..limit as i32).collect::<Vec<_>>();
        let mut survey = Survey::from_generations(self.newest_of(name, slots).await?);
        if survey.ticket_limit > limit {
            let more = (limit as i32..survey.ticket_limit.min(MAX_LIMIT) as i32).collect();
            let generations = self.newest_of(name, more).await?;
            for generation in generations {
                survey.newest.insert(generation.slot, generation);
            }
        }
        Ok(survey)
    }

    /// The newest generation of each of `slots` that was ever used.
    async fn newest_of(&self, name: &str, slots: Vec<i32>) -> Result<Vec<Generation>> {
        let reads = slots.into_iter().map(|slot| self.newest(name, slot));
        let found = futures_util::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// After taking a slot with `limit`: the limit of a live holder of
    /// another limit that raced with it, if any. `seen_ticket` is the newest
    /// ticket of the survey the take acted on; `own_ticket` the ticket a
    /// semaphore drew.
    ///
    /// Tickets newer than the survey's newest (for a semaphore also the
    /// [`RACE_WINDOW`] tickets up to it) with another limit mean a racing
    /// semaphore of that limit: survey its slots again. A semaphore also reads slot 0 again, where a racing
    /// mutex (which draws no ticket) sits; the mutex in turn sees the
    /// semaphore's ticket, and each wrote before it read.
    pub(crate) async fn raced_limit(
        &self,
        name: &str,
        limit: u32,
        seen_ticket: i64,
        own_ticket: Option<i64>,
        now: impl Fn() -> i64,
    ) -> Result<Option<u32>> {
        let mut widest = None;
        let mut note = |other: &Generation| {
            if other.limit != limit && other.limit > 0 {
                widest = widest.max(Some(other.limit));
            }
        };
        if own_ticket.is_some() {
            // Tickets drawn shortly before the survey may belong to racers
            // whose inserts came after it: read a window of them at once.
            let window = (seen_ticket - RACE_WINDOW + 1).max(1)..=seen_ticket;
            let reads = window.map(|ticket| self.get_generation(name, TICKET_SLOT, ticket));
            for other in futures_util::future::try_join_all(reads)
                .await?
                .iter()
                .flatten()
            {
                note(other);
            }
        }
        let mut ticket = seen_ticket;
        loop {
            ticket += 1;
            if ticket - seen_ticket > RACE_TICKETS {
                widest = Some(MAX_LIMIT);
                break;
            }
            if Some(ticket) == own_ticket {
                continue;
            }
            match self.get_generation(name, TICKET_SLOT, ticket).await? {
                Some(other) => note(&other),
                None if own_ticket.is_some_and(|own| ticket < own) => {}
                None => break,
            }
        }
        let slots: Vec<i32> = match widest {
            Some(widest) => (0..limit.max(widest).min(MAX_LIMIT) as i32).collect(),
            None if own_ticket.is_some() => vec![0],
            None => return Ok(None),
        };
        let survey = Survey::from_generations(self.newest_of(name, slots).await?);
        Ok(survey.other_limit(limit, now()))
    }

    async fn get(&self, id: &str) -> Result<Option<Document>> {
        self.coll
            .find_one(doc! { "_id": id })
            .await
            .map_err(errors::map)
    }

    async fn get_generation(&self, name: &str, slot: i32, gen: i64) -> Result<Option<Generation>> {
        Ok(self
            .get(&doc_id(name, slot, gen))
            .await?
            .as_ref()
            .and_then(Generation::from_doc))
    }

    /// The newest generation of one slot: from the head hint, step forward.
    async fn newest(&self, name: &str, slot: i32) -> Result<Option<Generation>> {
        let head = self
            .get(&head_id(name, slot))
            .await?
            .and_then(|doc| doc.get_i64("gen").ok());
        let start = head.unwrap_or(1);
        let mut newest = match self.get_generation(name, slot, start).await? {
            Some(found) => found,
            // Never used: no head and no generation 1.
            None if head.is_none() => return Ok(None),
            // The head lags behind the collected range: ask by index.
            None => match self.newest_by_query(name, slot).await? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        while let Some(next) = self.get_generation(name, slot, newest.gen + 1).await? {
            newest = next;
        }
        Ok(Some(newest))
    }

    async fn newest_by_query(&self, name: &str, slot: i32) -> Result<Option<Generation>> {
        let newest = self
            .coll
            .find_one(doc! { "name": name, "slot": slot, "gen": { "$gte": 1 } })
            .sort(doc! { "gen": -1 })
            .await
            .map_err(errors::map)?;
        Ok(newest.as_ref().and_then(Generation::from_doc))
    }

    /// Inserts a generation; false when that `_id` exists (someone won).
    pub(crate) async fn insert(
        &self,
        name: &str,
        generation: &Generation,
        value: &str,
    ) -> Result<bool> {
        let doc = doc! {
            "_id": &generation.id,
            "name": name,
            "slot": generation.slot,
            "gen": generation.gen,
            "limit": generation.limit as i32,
            "value": value,
            "expires_at": generation.expires_at,
            "released": false,
            "token": generation.token,
        };
        match self.coll.insert_one(doc).await {
            Ok(_) => Ok(true),
            Err(e) if errors::is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(errors::map(e)),
        }
    }

    /// True when a generation newer than `gen` exists in `slot`: by the
    /// contiguity of the ledger, exactly when `gen + 1` exists.
    pub(crate) async fn newer_exists(&self, name: &str, slot: i32, gen: i64) -> Result<bool> {
        Ok(self.get(&doc_id(name, slot, gen + 1)).await?.is_some())
    }

    /// The documents among `ids` that exist, with `projection`: one read
    /// (`_id` `$in`), whatever the count.
    async fn find_ids(&self, ids: &[String], projection: Document) -> Result<Vec<Document>> {
        let cursor = self
            .coll
            .find(doc! { "_id": { "$in": ids } })
            .projection(projection)
            .await
            .map_err(errors::map)?;
        cursor.try_collect().await.map_err(errors::map)
    }

    /// The ids among `ids` whose generation exists and, when `unreleased`,
    /// is not released: one read, whatever the count.
    pub(crate) async fn present(
        &self,
        ids: &[String],
        unreleased: bool,
    ) -> Result<HashSet<String>> {
        let docs = self.find_ids(ids, doc! { "released": 1 }).await?;
        Ok(docs
            .iter()
            .filter(|doc| !(unreleased && doc.get_bool("released").unwrap_or(false)))
            .filter_map(|doc| doc.get_str("_id").ok().map(str::to_string))
            .collect())
    }

    /// The holder values of the generations in `ids` (one read).
    pub(crate) async fn values(&self, ids: &[String]) -> Result<HashMap<String, String>> {
        let docs = self.find_ids(ids, doc! { "value": 1 }).await?;
        Ok(docs
            .iter()
            .filter_map(|doc| Some((doc.get_str("_id").ok()?, doc.get_str("value").ok()?)))
            .map(|(id, value)| (id.to_string(), value.to_string()))
            .collect())
    }

    /// The names starting with `prefix` with an unreleased, unexpired
    /// generation at server time `now`, sorted. A query over the whole
    /// collection: for operators, not for the acquisition path.
    pub(crate) async fn held_names(&self, prefix: &str, now: i64) -> Result<Vec<String>> {
        let pattern: String = std::iter::once('^'.to_string())
            .chain(prefix.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            }))
            .collect();
        let mut cursor = self
            .coll
            .find(doc! {
                "name": { "$regex": pattern },
                "released": false,
                "slot": { "$gte": 0 },
                "expires_at": { "$gt": now - EXPIRY_ALLOWANCE_MS },
            })
            .projection(doc! { "name": 1 })
            .await
            .map_err(errors::map)?;
        let mut names = std::collections::BTreeSet::new();
        while let Some(doc) = cursor.try_next().await.map_err(errors::map)? {
            if let Ok(name) = doc.get_str("name") {
                names.insert(name.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Moves the expiry of every generation in `ids` (one write). Callers
    /// check first that they are unreleased and hold their write locks.
    pub(crate) async fn extend_all(&self, ids: &[String], expires_at: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.coll
            .update_many(
                doc! { "_id": { "$in": ids } },
                doc! { "$set": { "expires_at": expires_at } },
            )
            .await
            .map_err(errors::map)?;
        Ok(())
    }

    /// Marks a generation released; false if it was released or gone already.
    pub(crate) async fn mark_released(&self, id: &str) -> Result<bool> {
        self.update_unreleased(id, doc! { "$set": { "released": true } })
            .await
    }

    /// Applies `update` to generation `id` if it exists and is not released.
    /// The check is a read by `_id`, not a filter condition: FerretDB v1
    /// serves only a pure `_id` filter without a scan, and applies updates
    /// non-atomically either way. Only the holder writes its document, one
    /// write at a time, so check-then-write is as safe as a filter.
    async fn update_unreleased(&self, id: &str, update: Document) -> Result<bool> {
        let current = self.get(id).await?;
        if current.is_none_or(|doc| doc.get_bool("released").unwrap_or(false)) {
            return Ok(false);
        }
        let result = self
            .coll
            .update_one(doc! { "_id": id }, update)
            .await
            .map_err(errors::map)?;
        Ok(result.matched_count == 1)
    }

    /// Draws a fencing token for `name` (a semaphore of `limit`) above
    /// `seen` (read at `seen_at`).
    pub(crate) async fn draw_ticket(
        &self,
        name: &str,
        limit: u32,
        mut seen: i64,
        mut seen_at: Instant,
    ) -> Result<i64> {
        for attempt in 0..TICKET_RETRIES {
            if seen_at.elapsed() > FRESHNESS {
                // Too old to act on: read the ticket ledger again first.
                let newest = self.newest(name, TICKET_SLOT).await?;
                seen = newest.map_or(seen, |n| n.gen.max(seen));
            }
            let ticket = Generation {
                id: doc_id(name, TICKET_SLOT, seen + 1),
                slot: TICKET_SLOT,
                gen: seen + 1,
                limit,
                expires_at: 0,
                released: true,
                token: seen + 1,
            };
            if self.insert(name, &ticket, "").await? {
                return Ok(ticket.gen);
            }
            crate::backends::retry::race_backoff(attempt).await;
            seen_at = Instant::now();
            seen = self
                .newest(name, TICKET_SLOT)
                .await?
                .map_or(seen + 1, |newest| newest.gen.max(seen + 1));
        }
        Err(Error::Connection(format!(
            "could not draw a fencing token for {name:?}: too much contention; retry"
        )))
    }

    /// Book-keeping after generation `gen` of `slot` was taken (best effort):
    /// move the head hint, then schedule generation `gen - 2` for deletion
    /// [`GC_DELAY`] from now.
    pub(crate) async fn advance(&self, name: &str, slot: i32, gen: i64) {
        let head = self
            .coll
            .update_one(
                doc! { "_id": head_id(name, slot) },
                doc! { "$set": { "name": name, "slot": slot, "gen": gen } },
            )
            .upsert(true)
            .await;
        if let Err(error) = head {
            // Without the new head, keep the old generations for the hint.
            tracing::debug!(%error, name, "moving a lock's head failed");
            return;
        }
        if gen > 2 {
            let due = Instant::now() + GC_DELAY;
            // A full backlog leaves the document in place: garbage, not harm.
            let _ = self.collector.try_send((due, doc_id(name, slot, gen - 2)));
        }
    }
}

/// Deletes scheduled generations when they are due, until the ledger is gone.
async fn collect(coll: Collection<Document>, mut due: mpsc::Receiver<(Instant, String)>) {
    while let Some((when, id)) = due.recv().await {
        tokio::time::sleep_until(when).await;
        if let Err(error) = coll.delete_one(doc! { "_id": &id }).await {
            tracing::debug!(%error, id, "collecting an old lock generation failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(slot: i32, gen: i64, limit: u32, expires_at: i64, released: bool) -> Generation {
        Generation {
            id: doc_id("n", slot, gen),
            slot,
            gen,
            limit,
            expires_at,
            released,
            token: gen,
        }
    }

    #[test]
    fn ids_sort_by_generation() {
        assert!(doc_id("a", 0, 9) < doc_id("a", 0, 10));
        assert_eq!(doc_id("a/b", 2, 7), "a/b/2/00000000000000000007");
    }

    #[test]
    fn free_lock_takes_generation_one() {
        let plan = Survey::default().plan(1, 1000, |_| 0);
        assert_eq!(
            plan,
            Plan::Take {
                slot: 0,
                gen: 1,
                replaces: None
            }
        );
    }

    #[test]
    fn newest_generation_decides() {
        let survey = Survey::from_generations([
            generation(0, 3, 1, 5000, false),
            generation(0, 2, 1, 9000, false),
            generation(TICKET_SLOT, 4, 0, 0, true),
        ]);
        assert_eq!(survey.newest[&0].gen, 3);
        assert_eq!(survey.newest_ticket, 4);
        assert_eq!(
            survey.plan(1, 1000, |_| 0),
            Plan::Busy {
                wake_at: Some(5000 + EXPIRY_ALLOWANCE_MS)
            }
        );
    }

    #[test]
    fn released_and_expired_slots_are_free() {
        let released = Survey::from_generations([generation(0, 3, 1, 5000, true)]);
        assert_eq!(
            released.plan(1, 1000, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 4,
                replaces: None
            }
        );
        let expired = Survey::from_generations([generation(0, 3, 1, 5000, false)]);
        // Still live within the allowance, free after it.
        assert!(matches!(expired.plan(1, 5000, |_| 0), Plan::Busy { .. }));
        let later = 5000 + EXPIRY_ALLOWANCE_MS;
        assert_eq!(
            expired.plan(1, later, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 4,
                replaces: Some(generation(0, 3, 1, 5000, false))
            }
        );
    }

    #[test]
    fn the_newest_ticket_carries_its_limit() {
        let survey = Survey::from_generations([
            generation(TICKET_SLOT, 7, 5, 0, true),
            generation(TICKET_SLOT, 6, 2, 0, true),
        ]);
        assert_eq!((survey.newest_ticket, survey.ticket_limit), (7, 5));
        // Tickets are never live holders.
        assert_eq!(survey.other_limit(1, 0), None);
    }

    #[test]
    fn semaphores_pick_among_free_slots_and_refuse_other_limits() {
        let survey = Survey::from_generations([generation(1, 5, 3, 9000, false)]);
        assert_eq!(
            survey.plan(3, 1000, |n| n - 1),
            Plan::Take {
                slot: 2,
                gen: 1,
                replaces: None
            }
        );
        assert_eq!(survey.plan(2, 1000, |_| 0), Plan::Mismatch { existing: 3 });
        // An idle lock takes any limit.
        assert_eq!(
            survey.plan(2, 99_999, |_| 0),
            Plan::Take {
                slot: 0,
                gen: 1,
                replaces: None
            }
        );
    }
}

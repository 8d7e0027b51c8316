//! The insert-only generation ledger: the one lock design that is safe on
//! every MongoDB-wire server, because it relies only on the atomicity of
//! inserting a unique `_id` (duplicate → error 11000), not on conditional
//! updates (FerretDB v1 applies those without atomicity).
//!
//! A lock of limit N has N slots; each slot has a ledger of generations,
//! documents `{_id: "<name>/<slot>/<gen, 20 digits>", name, slot, gen,
//! limit, holder value, expires_at (server ms), released, token}`
//! ([`super::plan`]). To take a slot, find its newest generation; if it is
//! released or expired, insert generation + 1. Winning the insert is winning
//! the slot; afterwards the winner checks that generation + 2 does not exist
//! (which catches a contender that read long ago).
//!
//! A release is an insert too: generation + 1 as a *release marker*
//! (`released: true`), by the holder or by an operator forcing it. Of a
//! release and a takeover of the same expired generation exactly one insert
//! wins, and no later write can undo a release: renewals write only the
//! holder's own document, never the marker.
//!
//! Every access is by exact `_id`, the only lookup FerretDB v1 serves
//! without scanning the collection. That works because a slot's existing
//! generations always form one contiguous range, so "did anyone take my slot
//! after me" is "does g + 1 exist", and the newest generation is found by
//! reading a window of ids forward from what the process already knows of
//! the name ([`super::known`]) in one `_id $in` read, or, for a name it
//! knows nothing of, from the slot's head document `{_id:
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
//! the current holder's, which fencing rejects downstream.) Deletions are
//! scheduled in the taker's process, so a taker that exits or is killed
//! within `GC_DELAY` leaves its generations behind; every [`SWEEP_EVERY`]
//! generations a take also sweeps the whole slot below `g − 2` (the same
//! delay), so leftovers do not outlive the next sweeper that stays, and
//! until then a survey trusts a head past them ([`judge_window`]).
//!
//! Fencing tokens: a mutex's token is its generation. A semaphore draws a
//! token from a per-name ticket ledger (slot -1) the same way, before
//! inserting its slot generation.
//!
//! Limits: every ticket records its drawer's limit, and every survey (mutex
//! or semaphore) reads the newest ticket, so a survey also covers the slots
//! of the last semaphore limit in use and sees a live holder of another
//! limit wherever it sits. Acquisitions that race across limits are caught
//! after the insert (see [`Ledger::post_check`]): each side writes before
//! it reads where the other writes, so of two racers at least one sees the
//! other and backs out (both may). Races among more than [`RACE_WINDOW`]
//! semaphore acquisitions with different limits are caught on a
//! best-effort basis only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures_util::TryStreamExt;

use mongodb::bson::{doc, Document};
use mongodb::Collection;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::errors;
use super::known::NameKey;
use super::plan::{doc_id, head_id, Generation, Survey, MAX_LIMIT, TICKET_SLOT};
use super::sessions::Sessions;
use crate::error::{Error, Result};

/// How long after a survey an attempt may still insert what it planned:
/// well within [`GC_DELAY`] (the documents it read are still there), and
/// long enough for a slow server (a FerretDB surveying a large collection
/// can take seconds; with 5 s a `try_acquire` of a free name gave up).
pub(crate) const FRESHNESS: Duration = Duration::from_secs(30);
/// How long after generation g was taken generation g − 2 is deleted.
pub(crate) const GC_DELAY: Duration = Duration::from_secs(60);
/// Deletions waiting for their time, at most (beyond: left in place).
const GC_BACKLOG: usize = 100_000;
/// About every this many generations (a multiple of [`HEAD_EVERY`]) a take
/// also sweeps everything of its slot below `gen - 2`, [`GC_DELAY`] later:
/// the deletions that takers which exited or were killed within
/// `GC_DELAY` of their take had scheduled and never made.
const SWEEP_EVERY: i64 = 64;

/// How many lost ticket races a semaphore acquisition tolerates.
const TICKET_RETRIES: u32 = 64;

/// How many tickets newer than its survey an acquisition inspects for
/// other limits (beyond: it surveys up to [`MAX_LIMIT`]).
const RACE_TICKETS: i64 = 64;

/// How many tickets up to its survey's newest a semaphore acquisition
/// inspects for racers of other limits.
const RACE_WINDOW: i64 = 8;

/// How many generations of a slot a survey's first read covers; each
/// further read of a slot that kept going doubles it.
const WINDOW: i64 = 2;
/// Reads a windowed survey makes before it steps slot by slot instead.
const WINDOW_ROUNDS: usize = 6;
/// How many newer tickets a mutex's post-check reads with it at once.
const TICKET_PEEK: i64 = 1;
/// A slot's head hint moves about every this many generations (and at the
/// first): a survey from it reads on a few windows at most.
const HEAD_EVERY: i64 = 8;

/// The generation below which a take of `gen` sweeps its slot, if it is
/// one of the takes that sweep (those at the head positions of every
/// [`SWEEP_EVERY`]th generation). Generations below `gen - 2` had their
/// successor's successor taken before `gen`, so deleting them `GC_DELAY`
/// after `gen` keeps the rule that `k` goes only `GC_DELAY` after `k + 2`;
/// deleting a prefix keeps the slot's generations one contiguous range.
fn sweep_below(gen: i64) -> Option<i64> {
    (gen > SWEEP_EVERY / 2 && gen % SWEEP_EVERY < 2).then(|| gen - 2)
}

/// What the collector deletes once it is due.
#[derive(Debug, PartialEq)]
enum Collect {
    /// One generation, by `_id`.
    One(String),
    /// Every document of the slot whose `gen` is below this one, except
    /// its head (which the documents above it need).
    Below(Document),
}

impl Collect {
    /// Everything of `slot` of `name` below generation `gen`, the head
    /// hint aside: without it a fresh survey could find neither a head nor
    /// generation 1 and take the slot as never used.
    fn below(name: &str, slot: i32, gen: i64) -> Self {
        Collect::Below(doc! {
            "name": name,
            "slot": slot,
            "gen": { "$lt": gen },
            "_id": { "$ne": head_id(name, slot) },
        })
    }
}

/// True for the generations a head hint may name: a take of one moves the
/// head. Two in a row, because takes go two generations at a time (take,
/// release marker) or one (takeover after expiry).
fn is_head_position(gen: i64) -> bool {
    gen == 1 || gen % HEAD_EVERY < 2
}

/// How a slot's newest generation was found in one windowed read.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// This is the newest (or the slot was never used: `None`).
    Done(Option<Generation>),
    /// Read on from this generation.
    From(i64, Option<Generation>),
    /// The window and the head say nothing: ask otherwise.
    Lost,
}

/// What one windowed read of a slot says: `newest` is the newest generation
/// found in `[from, from + width)`, `head_gen` the slot's head hint when it
/// was read with it (`head`), `seen_newest` whether an earlier window
/// already found one.
fn judge_window(
    newest: Option<Generation>,
    head_gen: Option<i64>,
    from: i64,
    width: i64,
    head: bool,
    seen_newest: bool,
) -> Found {
    match (newest, head_gen) {
        // The head is past the window: what the window found are
        // leftovers below a gap (generations garbage collection
        // missed), not the newest; read on from the head.
        (_, Some(h)) if h >= from.saturating_add(width) => Found::From(h, None),
        (Some(g), _) if g.gen == from.saturating_add(width) - 1 => {
            Found::From(g.gen.saturating_add(1), Some(g))
        }
        (Some(g), _) => Found::Done(Some(g)),
        // Read on past the newest: it stays the newest.
        (None, _) if seen_newest => Found::Done(None),
        (None, None) if head && from == 1 => Found::Done(None),
        // Nothing where the knowledge or the head pointed (collected
        // away, or a stale head): only a full survey can tell.
        (None, _) => Found::Lost,
    }
}

/// What a take's check right after its insert found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PostCheck {
    /// Nobody overtook the take and no other limit raced it.
    Clear,
    /// A newer generation already exists: the take acted on an old state.
    Overtaken,
    /// A live holder of this other limit raced the take.
    Mismatch(u32),
}

/// The lock collection (cheap to clone).
#[derive(Clone)]
pub(crate) struct Ledger {
    coll: Collection<Document>,
    /// Deletions due later, in order.
    collector: mpsc::Sender<(Instant, Collect)>,
    /// How the server reads several documents by `_id` best.
    reads: IdReads,
    /// The renewal sessions that keep holders live.
    pub(crate) sessions: Sessions,
}

/// How to read a set of documents by `_id` in one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdReads {
    /// One `_id: {$in: [...]}` query: MongoDB serves it from the `_id`
    /// index.
    In,
    /// One exact-`_id` query per document, sent together: FerretDB v1
    /// pushes only a single exact `_id` down to its storage and evaluates
    /// `$in` by reading the whole collection (SQLite and PostgreSQL
    /// handlers alike).
    Each,
}

impl IdReads {
    /// The way that suits the server answering `buildInfo` with `info`.
    pub(crate) fn for_server(info: &Document) -> Self {
        if info.contains_key("ferretdbVersion") || info.contains_key("ferretdb") {
            IdReads::Each
        } else {
            IdReads::In
        }
    }
}

impl Ledger {
    /// The ledger on `coll`, with its collector task (which ends with the
    /// last clone of the ledger).
    pub(crate) fn new(coll: Collection<Document>, sessions: Sessions, reads: IdReads) -> Self {
        let (collector, due) = mpsc::channel(GC_BACKLOG);
        crate::runtime::spawn(collect(coll.clone(), due));
        Ledger {
            coll,
            collector,
            reads,
            sessions,
        }
    }

    /// The collection's name (events and the process's knowledge of names
    /// are keyed by it).
    pub(crate) fn collection(&self) -> &str {
        self.coll.name()
    }

    /// How the process's knowledge and waiters name `name` of this
    /// collection.
    pub(crate) fn key(&self, name: &str) -> NameKey {
        (self.collection().to_string(), name.to_string())
    }

    /// Creates the index the operators' reads use.
    pub(crate) async fn ensure_index(&self) -> Result<()> {
        let index = mongodb::IndexModel::builder()
            .keys(doc! { "name": 1, "slot": 1, "gen": -1 })
            .build();
        self.coll.create_index(index).await.map_err(errors::map)?;
        Ok(())
    }

    /// The newest ticket and the newest generation of each slot of `name`
    /// below `limit` and below the newest ticket's limit. `known` gives,
    /// per slot, the newest generation this process knows exists: reading
    /// starts there, usually in one request.
    pub(crate) async fn survey(
        &self,
        name: &str,
        limit: u32,
        known: impl Fn(i32) -> Option<i64>,
        now: impl Fn() -> i64,
    ) -> Result<Survey> {
        let slots = (TICKET_SLOT..limit as i32).collect::<Vec<_>>();
        let mut newest = self.newest_of(name, &slots, &known).await?;
        let ticket_limit = Survey::from_generations(newest.iter().cloned()).ticket_limit;
        if ticket_limit > limit {
            let more: Vec<i32> = (limit as i32..ticket_limit.min(MAX_LIMIT) as i32).collect();
            newest.extend(self.newest_of(name, &more, &known).await?);
        }
        Ok(Survey::from_generations(
            self.with_sessions(newest, &now).await?,
        ))
    }

    /// `generations` with each holder's expiry moved to its session's, where
    /// that is later and its own has run out (one read of the sessions
    /// involved, none when every holder is within its own expiry).
    async fn with_sessions(
        &self,
        mut generations: Vec<Generation>,
        now: &impl Fn() -> i64,
    ) -> Result<Vec<Generation>> {
        let now = now();
        let mut units: Vec<&str> = generations
            .iter()
            .filter(|g| g.slot >= 0 && !g.released && !g.unit.is_empty() && !g.is_live(now))
            .map(|g| g.unit.as_str())
            .collect();
        if units.is_empty() {
            return Ok(generations);
        }
        units.sort_unstable();
        units.dedup();
        let expiries = self.sessions.expiries(&units).await?;
        for g in &mut generations {
            if let Some(&session) = expiries.get(&g.unit) {
                g.expires_at = g.expires_at.max(session);
            }
        }
        Ok(generations)
    }

    /// The newest generation of each of `slots` that was ever used: windows
    /// of ids read together, forward from `known` (or from generation 1),
    /// each slot's head read with its first window. Known positions need the
    /// head too: the generation a process knows can be a leftover below a
    /// gap (a head position kept because moving the head failed, or one a
    /// killed taker never deleted), and the window would take it for the
    /// newest (the long mixed run on FerretDB drew ticket 562 of a
    /// semaphore already at 605).
    async fn newest_of(
        &self,
        name: &str,
        slots: &[i32],
        known: &impl Fn(i32) -> Option<i64>,
    ) -> Result<Vec<Generation>> {
        let mut best: BTreeMap<i32, Generation> = BTreeMap::new();
        // (slot, first generation to read)
        let mut pending: Vec<(i32, i64)> = slots
            .iter()
            .map(|&slot| (slot, known(slot).unwrap_or(1).max(1)))
            .collect();
        let mut width = WINDOW;
        let mut stragglers = Vec::new();
        for round in 0..WINDOW_ROUNDS {
            if pending.is_empty() {
                break;
            }
            // Only the first window reads each slot's head too; later
            // windows read on from what it or they found.
            let head = round == 0;
            let mut ids = Vec::new();
            for &(slot, from) in &pending {
                ids.extend((from..from.saturating_add(width)).map(|gen| doc_id(name, slot, gen)));
                if head {
                    ids.push(head_id(name, slot));
                }
            }
            let docs = self.find_ids(&ids, doc! { "value": 0 }).await?;
            let mut by_id: HashMap<String, Document> = docs
                .into_iter()
                .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
                .collect();
            let mut next = Vec::new();
            for (slot, from) in pending {
                let window: Vec<Generation> = (from..from.saturating_add(width))
                    .filter_map(|gen| by_id.remove(&doc_id(name, slot, gen)))
                    .filter_map(|d| Generation::from_doc(&d))
                    .collect();
                let head_gen = head
                    .then(|| by_id.remove(&head_id(name, slot)))
                    .flatten()
                    .and_then(|d| d.get_i64("gen").ok());
                let newest = window.into_iter().max_by_key(|g| g.gen);
                let found = judge_window(
                    newest,
                    head_gen,
                    from,
                    width,
                    head,
                    best.contains_key(&slot),
                );
                match found {
                    Found::Done(g) => {
                        if let Some(g) = g {
                            best.insert(slot, g);
                        }
                    }
                    Found::From(gen, g) => {
                        if let Some(g) = g {
                            best.insert(slot, g);
                        }
                        next.push((slot, gen));
                    }
                    Found::Lost => stragglers.push(slot),
                }
            }
            pending = next;
            width *= 2;
        }
        stragglers.extend(pending.iter().map(|p| p.0));
        for slot in stragglers {
            let from = best.get(&slot).map(|g| g.gen);
            if let Some(g) = self.newest(name, slot, from).await? {
                best.insert(slot, g);
            }
        }
        Ok(best.into_values().collect())
    }

    /// After taking generation `gen` of `slot` with `limit`: whether a
    /// newer generation exists, and the limit of a live holder of another
    /// limit that raced with it, if any. `seen_ticket` is the newest ticket
    /// the take knew of; `own_ticket` the ticket a semaphore drew. A mutex
    /// asks both in one read, unless the tickets moved far.
    pub(crate) async fn post_check(
        &self,
        name: &str,
        (slot, gen, limit): (i32, i64, u32),
        seen_ticket: i64,
        own_ticket: Option<i64>,
        now: impl Fn() -> i64,
    ) -> Result<PostCheck> {
        let next = doc_id(name, slot, gen + 1);
        if own_ticket.is_some() {
            let (overtaken, raced) = tokio::join!(
                self.newer_exists(name, slot, gen),
                self.raced_limit(name, limit, seen_ticket, own_ticket, &now)
            );
            return Ok(match (overtaken?, raced?) {
                (true, _) => PostCheck::Overtaken,
                (false, Some(existing)) => PostCheck::Mismatch(existing),
                (false, None) => PostCheck::Clear,
            });
        }
        let tickets: Vec<String> = (seen_ticket + 1..=seen_ticket + TICKET_PEEK)
            .map(|t| doc_id(name, TICKET_SLOT, t))
            .collect();
        let ids: Vec<String> = std::iter::once(next.clone()).chain(tickets).collect();
        let docs = self.find_ids(&ids, doc! { "value": 0 }).await?;
        if docs.iter().any(|d| d.get_str("_id") == Ok(next.as_str())) {
            return Ok(PostCheck::Overtaken);
        }
        let drawn: BTreeMap<i64, u32> = docs
            .iter()
            .filter_map(Generation::from_doc)
            .filter(|g| g.slot == TICKET_SLOT)
            .map(|g| (g.gen, g.limit))
            .collect();
        // The newer tickets form a contiguous run from seen + 1.
        let run = (seen_ticket + 1..)
            .take_while(|t| drawn.contains_key(t))
            .count() as i64;
        let raced = if run == TICKET_PEEK {
            self.raced_limit(name, limit, seen_ticket, None, &now)
                .await?
        } else {
            match drawn.values().filter(|l| **l != limit && **l > 0).max() {
                Some(&widest) => self.other_limit_among(name, limit, widest, &now).await?,
                None => None,
            }
        };
        Ok(raced.map_or(PostCheck::Clear, PostCheck::Mismatch))
    }

    /// The limit of a live holder of another limit that raced a take with
    /// `limit` (see [`Self::post_check`]).
    ///
    /// Tickets newer than the survey's newest (for a semaphore also the
    /// [`RACE_WINDOW`] tickets up to it) with another limit mean a racing
    /// semaphore of that limit: survey its slots again. A semaphore also
    /// reads slot 0 again, where a racing mutex (which draws no ticket)
    /// sits; the mutex in turn sees the semaphore's ticket, and each wrote
    /// before it read.
    async fn raced_limit(
        &self,
        name: &str,
        limit: u32,
        seen_ticket: i64,
        own_ticket: Option<i64>,
        now: &impl Fn() -> i64,
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
            let window: Vec<String> = ((seen_ticket - RACE_WINDOW + 1).max(1)..=seen_ticket)
                .map(|ticket| doc_id(name, TICKET_SLOT, ticket))
                .collect();
            for doc in self.find_ids(&window, doc! { "value": 0 }).await? {
                if let Some(other) = Generation::from_doc(&doc) {
                    note(&other);
                }
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
        match widest {
            Some(widest) => self.other_limit_among(name, limit, widest, now).await,
            None if own_ticket.is_some() => {
                let slot0 = self.newest_of(name, &[0], &|_| None).await?;
                let slot0 = self.with_sessions(slot0, now).await?;
                Ok(Survey::from_generations(slot0).other_limit(limit, now()))
            }
            None => Ok(None),
        }
    }

    /// Surveys the slots below the larger of `limit` and `widest` for a
    /// live holder whose limit is not `limit`.
    async fn other_limit_among(
        &self,
        name: &str,
        limit: u32,
        widest: u32,
        now: &impl Fn() -> i64,
    ) -> Result<Option<u32>> {
        let slots: Vec<i32> = (0..limit.max(widest).min(MAX_LIMIT) as i32).collect();
        let newest = self.newest_of(name, &slots, &|_| None).await?;
        let survey = Survey::from_generations(self.with_sessions(newest, now).await?);
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

    /// The newest generation of one slot, stepping one id at a time: from
    /// `from` when given, else from the head hint.
    async fn newest(&self, name: &str, slot: i32, from: Option<i64>) -> Result<Option<Generation>> {
        let head = match from {
            Some(gen) => Some(gen),
            None => self
                .get(&head_id(name, slot))
                .await?
                .and_then(|doc| doc.get_i64("gen").ok()),
        };
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
    /// Each insert carries a random nonce, so one whose reply was lost is
    /// told apart from a rival's by reading the document back.
    pub(crate) async fn insert(
        &self,
        name: &str,
        generation: &Generation,
        value: &str,
    ) -> Result<bool> {
        let nonce = crate::backends::retry::random_u64() as i64;
        let doc = doc! {
            "_id": &generation.id,
            "name": name,
            "slot": generation.slot,
            "gen": generation.gen,
            "limit": generation.limit as i32,
            "value": value,
            "expires_at": generation.expires_at,
            "released": generation.released,
            "token": generation.token,
            "unit": &generation.unit,
            "nonce": nonce,
        };
        let failed = match self.coll.insert_one(doc.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if errors::is_duplicate_key(&e) => return Ok(false),
            Err(e) => errors::map(e),
        };
        if !failed.is_transient() {
            return Err(failed);
        }
        // The insert may or may not have happened (a connection that died
        // with it, as after a server restart): the nonce tells whose the
        // document is, if it exists; if not, one more try.
        match self.get(&generation.id).await? {
            Some(found) => Ok(found.get_i64("nonce") == Ok(nonce)),
            None => match self.coll.insert_one(doc).await {
                Ok(_) => Ok(true),
                Err(e) if errors::is_duplicate_key(&e) => Ok(false),
                Err(e) => Err(errors::map(e)),
            },
        }
    }

    /// Releases generation `held` by inserting its release marker (the
    /// next generation, released). False when the next generation exists
    /// already: someone released it or took it over first.
    pub(crate) async fn release(&self, name: &str, held: &Generation) -> Result<bool> {
        self.insert(name, &held.marker(), "").await
    }

    /// True when a generation newer than `gen` exists in `slot`: by the
    /// contiguity of the ledger, exactly when `gen + 1` exists.
    pub(crate) async fn newer_exists(&self, name: &str, slot: i32, gen: i64) -> Result<bool> {
        Ok(self.get(&doc_id(name, slot, gen + 1)).await?.is_some())
    }

    /// The documents among `ids` that exist, with `projection`: one round
    /// trip, whatever the count ([`IdReads`]).
    async fn find_ids(&self, ids: &[String], projection: Document) -> Result<Vec<Document>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if self.reads == IdReads::Each {
            let reads = ids.iter().map(|id| {
                let projection = projection.clone();
                async move {
                    self.coll
                        .find_one(doc! { "_id": id })
                        .projection(projection)
                        .await
                }
            });
            let found = futures_util::future::try_join_all(reads)
                .await
                .map_err(errors::map)?;
            return Ok(found.into_iter().flatten().collect());
        }
        let cursor = self
            .coll
            .find(doc! { "_id": { "$in": ids } })
            .projection(projection)
            .await
            .map_err(errors::map)?;
        cursor.try_collect().await.map_err(errors::map)
    }

    /// Which of `ids` exist, each with its `released` flag: one read,
    /// whatever the count.
    pub(crate) async fn present(&self, ids: &[String]) -> Result<HashMap<String, bool>> {
        let docs = self.find_ids(ids, doc! { "released": 1 }).await?;
        Ok(docs
            .iter()
            .filter_map(|doc| {
                let id = doc.get_str("_id").ok()?.to_string();
                Some((id, doc.get_bool("released").unwrap_or(false)))
            })
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

    /// The names starting with `prefix` with a live holder at server time
    /// `now` (a generation that is no release marker, has no successor and
    /// has not run out, by itself or its session), sorted. Queries over the
    /// whole collection: for operators, not for the acquisition path.
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
        let candidates: Vec<Generation> = self
            .coll
            .find(doc! {
                "name": { "$regex": pattern },
                "released": false,
                "slot": { "$gte": 0 },
            })
            .projection(doc! { "value": 0 })
            .await
            .map_err(errors::map)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(errors::map)?
            .iter()
            .filter_map(Generation::from_doc)
            .collect();
        let successors: Vec<String> = candidates.iter().map(|g| g.marker().id).collect();
        let followed = self.present(&successors).await?;
        let newest: Vec<Generation> = candidates
            .into_iter()
            .filter(|g| !followed.contains_key(&g.marker().id))
            .collect();
        let names = |g: &Generation| -> Option<String> {
            let (rest, _gen) = g.id.rsplit_once('/')?;
            Some(rest.rsplit_once('/')?.0.to_string())
        };
        Ok(self
            .with_sessions(newest, &|| now)
            .await?
            .iter()
            .filter(|g| g.is_live(now))
            .filter_map(names)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Moves the expiry of generation `id` (an operator's renewal).
    pub(crate) async fn extend(&self, id: &str, expires_at: i64) -> Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "expires_at": expires_at } },
            )
            .await
            .map_err(errors::map)?;
        Ok(())
    }

    /// Takes generation `id` out of its renewal unit, live until
    /// `expires_at` (its last proof): nobody renews it any more, and it runs
    /// out like a crashed holder's. Only its holder writes it.
    pub(crate) async fn leave_unit(&self, id: &str, expires_at: i64) -> Result<()> {
        self.coll
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "unit": "", "expires_at": expires_at } },
            )
            .await
            .map_err(errors::map)?;
        Ok(())
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
                let newest = self.newest(name, TICKET_SLOT, None).await?;
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
                unit: String::new(),
            };
            if self.insert(name, &ticket, "").await? {
                return Ok(ticket.gen);
            }
            crate::backends::retry::race_backoff(attempt).await;
            seen_at = Instant::now();
            seen = self
                .newest(name, TICKET_SLOT, Some(seen + 1))
                .await?
                .map_or(seen + 1, |newest| newest.gen.max(seen + 1));
        }
        Err(Error::Connection(format!(
            "could not draw a fencing token for {name:?}: too much contention; retry"
        )))
    }

    /// Book-keeping after generation `gen` of `slot` was taken (best effort):
    /// schedule generation `gen - 2` for deletion [`GC_DELAY`] from now, and
    /// every [`HEAD_EVERY`] generations move the head hint. A generation
    /// the head may name is deleted only once the head moved past it, so
    /// the head names an existing generation unless a delayed writer set
    /// it back.
    pub(crate) async fn advance(&self, name: &str, slot: i32, gen: i64) {
        let due = || Instant::now() + GC_DELAY;
        if gen > 2 && !is_head_position(gen - 2) {
            // A full backlog leaves the document in place: garbage, not harm.
            let _ = self
                .collector
                .try_send((due(), Collect::One(doc_id(name, slot, gen - 2))));
        }
        if !is_head_position(gen) {
            return;
        }
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
        // The earlier head positions, kept until now.
        for previous in (gen - HEAD_EVERY - 1).max(1)..=gen - 2 {
            if is_head_position(previous) {
                let _ = self
                    .collector
                    .try_send((due(), Collect::One(doc_id(name, slot, previous))));
            }
        }
        if let Some(below) = sweep_below(gen) {
            let _ = self
                .collector
                .try_send((due(), Collect::below(name, slot, below)));
        }
    }
}

/// Deletes scheduled generations when they are due, until the ledger is gone.
async fn collect(coll: Collection<Document>, mut due: mpsc::Receiver<(Instant, Collect)>) {
    while let Some((when, what)) = due.recv().await {
        tokio::time::sleep_until(when).await;
        let deleted = match &what {
            Collect::One(id) => coll.delete_one(doc! { "_id": id }).await,
            Collect::Below(filter) => coll.delete_many(filter.clone()).await,
        };
        if let Err(error) = deleted {
            tracing::debug!(%error, ?what, "collecting old lock generations failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the long mixed run on FerretDB: a process that knew ticket
    /// 561 of a semaphore found 561 still there (a head position whose
    /// deletion was never scheduled) but not 562 (collected), took 561 for
    /// the newest and drew 562 while the ledger was at 605. Read with the
    /// head, the window defers to it.
    #[test]
    fn a_known_position_below_a_gap_defers_to_the_head() {
        let mut leftover = generation(561);
        leftover.slot = TICKET_SLOT;
        let found = judge_window(Some(leftover), Some(600), 561, 2, true, false);
        assert_eq!(found, Found::From(600, None));
        // Without anything past the window, the window decides.
        let newest = judge_window(Some(generation(562)), Some(560), 561, 2, true, false);
        assert_eq!(newest, Found::From(563, Some(generation(562))));
        let last = judge_window(Some(generation(561)), Some(560), 561, 2, true, false);
        assert_eq!(last, Found::Done(Some(generation(561))));
    }

    #[test]
    fn every_sweep_even_or_odd_run_of_takes_meets_one() {
        // Takes go two generations at a time, from either parity.
        for start in [33, 34] {
            let sweeps: Vec<i64> = (0..64)
                .map(|step| start + 2 * step)
                .filter_map(sweep_below)
                .collect();
            assert_eq!(sweeps.len(), 2, "from {start}: {sweeps:?}");
        }
        assert_eq!(sweep_below(64), Some(62));
        assert_eq!(sweep_below(129), Some(127));
        assert_eq!(sweep_below(1), None, "nothing below the first take");
        assert_eq!(sweep_below(63), None);
        assert!((1..=SWEEP_EVERY * 4)
            .filter_map(|gen| sweep_below(gen).map(|below| (gen, below)))
            .all(|(gen, below)| is_head_position(gen) && below == gen - 2));
    }

    #[test]
    fn a_sweep_spares_the_head_and_other_names() {
        let Collect::Below(filter) = Collect::below("a/0", 3, 62) else {
            unreachable!()
        };
        assert_eq!(filter.get_str("name"), Ok("a/0"));
        assert_eq!(filter.get_i32("slot"), Ok(3));
        assert_eq!(filter.get_document("gen").unwrap().get_i64("$lt"), Ok(62));
        assert_eq!(
            filter.get_document("_id").unwrap().get_str("$ne"),
            Ok("a/0/3/head")
        );
    }

    fn generation(gen: i64) -> Generation {
        Generation {
            id: doc_id("n", 0, gen),
            slot: 0,
            gen,
            limit: 1,
            expires_at: 0,
            released: gen % 2 == 0,
            token: gen,
            unit: String::new(),
        }
    }

    /// Found by the long mixed run on FerretDB: a fresh process took
    /// generation 127 of a mutex whose holders were past 520 (token 127,
    /// granted before). Old generations up to 126 were still there while
    /// the ones after were collected: reading windows forward from
    /// generation 1, it never looked at the head (at 519) again.
    #[test]
    fn a_head_past_the_window_wins_over_leftovers_below_a_gap() {
        let leftovers = judge_window(Some(generation(2)), Some(519), 1, 2, true, false);
        assert_eq!(leftovers, Found::From(519, None));
        let nothing = judge_window(None, Some(519), 1, 2, true, false);
        assert_eq!(nothing, Found::From(519, None));
    }

    #[test]
    fn a_window_without_a_head_past_it_decides() {
        // Full window: read on.
        let full = judge_window(Some(generation(2)), Some(2), 1, 2, true, false);
        assert_eq!(full, Found::From(3, Some(generation(2))));
        // Ends inside the window: the newest.
        let inside = judge_window(Some(generation(5)), None, 3, 4, false, false);
        assert_eq!(inside, Found::Done(Some(generation(5))));
        // Never used.
        assert_eq!(
            judge_window(None, None, 1, 2, true, false),
            Found::Done(None)
        );
        // Read on past the newest found earlier.
        assert_eq!(
            judge_window(None, None, 7, 8, false, true),
            Found::Done(None)
        );
    }

    #[test]
    fn an_empty_window_where_a_head_or_knowledge_pointed_asks_a_full_survey() {
        // Read on from a head whose generation is gone (a stale head).
        assert_eq!(judge_window(None, None, 519, 2, false, false), Found::Lost);
        // A known position with nothing there and no head.
        assert_eq!(judge_window(None, None, 40, 2, true, false), Found::Lost);
        // A head inside an empty window.
        assert_eq!(
            judge_window(None, Some(41), 40, 4, true, false),
            Found::Lost
        );
    }
}

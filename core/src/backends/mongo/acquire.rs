//! Taking a MongoDB lock: one attempt ([`attempt`]), and the backend's own
//! acquire loop ([`acquire`]).
//!
//! An attempt surveys the name in one read (from what the process knows of
//! it), inserts the next generation of a free slot, and checks in one more
//! read that nobody overtook it; its events and book-keeping go out off
//! the caller's path. A waiter woken by a release skips the survey: the
//! release named the freed generation, so it inserts the next one at once;
//! so does a call that starts while the newest release this process saw
//! of the name is still the newest generation it knows (a lock used again
//! and again by one process costs its insert, its post-check and its
//! release).
//!
//! Waiting costs no request: the call queues in this process's waiters on
//! the name ([`super::waiters`]) before its first attempt, and a waiter
//! that finds others queued ahead parks without one. A release gives one
//! waiter per freed slot a turn; one that loses the insert race parks again
//! without a survey. Only the first waiter surveys when the holders' leases
//! would run out (a holder that died releases nothing).

use std::time::Duration;

use tokio::time::Instant;

use super::known::Freed;
use super::ledger::{PostCheck, FRESHNESS};
use super::plan::{doc_id, Generation, Plan, MAX_LIMIT, TICKET_SLOT};
use super::waiters::{Turn, Wanted};
use super::{MongoBackend, MongoGrant};
use crate::backend::{AcquireRequest, Acquisition, Grant, WaitSignals};
use crate::backends::retry::{race_backoff, random_u64};
use crate::error::{Error, Result};
use crate::model::LockEventKind;

/// How many lost insert races a `try_acquire` tolerates before it gives up.
pub(super) const RACE_RETRIES: u32 = 8;
/// When a waiter lost a race and knows no holder's expiry: survey again
/// after this long at the latest.
const RECHECK_AFTER_RACE: Duration = Duration::from_millis(50);
/// After a waiter's attempt failed on a transient error: survey again after
/// this long, times the failures in a row (at most [`TRANSIENT_PAUSE_MAX`]).
const TRANSIENT_PAUSE: Duration = Duration::from_millis(100);
const TRANSIENT_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Where an attempt starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// Survey the name first.
    Survey,
    /// A release freed this slot: insert the generation after its marker.
    Freed(Freed),
}

/// What one attempt came to.
pub(super) enum Outcome {
    /// Taken; the insert that proved it was sent at `sent`.
    Granted { grant: Grant, sent: Instant },
    /// Every slot is held; the first may run out at this server time.
    Busy { wake_at_ms: Option<i64> },
    /// Another contender won the slot, or the state was old: try again.
    Missed,
}

/// One attempt at `request` from `start`.
pub(super) async fn attempt(
    backend: &MongoBackend,
    request: &AcquireRequest,
    start: Start,
) -> Result<Outcome> {
    if request.limit > MAX_LIMIT {
        return Err(Error::invalid(format!(
            "the MongoDB backend serves semaphores of up to {MAX_LIMIT} holders, not {}",
            request.limit
        )));
    }
    let key = backend.key(&request.name);
    let known = &backend.events.known;
    let (ledger, clock) = (&backend.ledger, &backend.clock);
    let started = Instant::now();
    let direct = match start {
        Start::Freed(freed) => known
            .newest(&key, TICKET_SLOT)
            .filter(|_| usable(&freed, request, clock.now_ms()))
            .map(|ticket| (freed, ticket)),
        Start::Survey => None,
    };
    let (slot, gen, replaces, seen_ticket, fresh_until_ms) = match direct {
        Some((freed, ticket)) => (
            freed.slot,
            freed.marker + 1,
            None,
            ticket,
            freed.at_ms + FRESHNESS.as_millis() as i64,
        ),
        None => {
            let survey = ledger
                .survey(
                    &request.name,
                    request.limit,
                    |slot| known.newest(&key, slot),
                    || clock.now_ms(),
                )
                .await?;
            for g in survey.newest.values() {
                known.saw(&key, g.slot, g.gen);
            }
            known.saw(&key, TICKET_SLOT, survey.newest_ticket);
            let now = clock.now_ms();
            let pick = |n: usize| (random_u64() % n as u64) as usize;
            match survey.plan(request.limit, now, pick) {
                Plan::Mismatch { existing } => return Err(mismatch(request, existing)),
                Plan::Busy { wake_at } => {
                    return Ok(Outcome::Busy {
                        wake_at_ms: wake_at,
                    })
                }
                Plan::Take {
                    slot,
                    gen,
                    replaces,
                } => (
                    slot,
                    gen,
                    replaces,
                    survey.newest_ticket,
                    now + FRESHNESS.as_millis() as i64,
                ),
            }
        }
    };
    let ticket = if request.limit == 1 {
        None
    } else {
        let drawn = ledger.draw_ticket(&request.name, request.limit, seen_ticket, started);
        let ticket = drawn.await?;
        known.saw(&key, TICKET_SLOT, ticket);
        Some(ticket)
    };
    let token = ticket.unwrap_or(gen);
    if clock.now_ms() > fresh_until_ms || started.elapsed() > FRESHNESS {
        return Ok(Outcome::Missed); // the plan is too old to act on
    }
    let sent = Instant::now();
    let generation = Generation {
        id: doc_id(&request.name, slot, gen),
        slot,
        gen,
        limit: request.limit,
        expires_at: clock.now_ms() + request.ttl.as_millis() as i64,
        released: false,
        token,
        unit: backend.unit(request.ttl),
    };
    let won = ledger
        .insert(&request.name, &generation, &request.value)
        .await?;
    known.saw(&key, slot, gen);
    if !won {
        return Ok(Outcome::Missed); // someone else took this generation
    }
    let checked = ledger
        .post_check(
            &request.name,
            (slot, gen, request.limit),
            seen_ticket,
            ticket,
            || clock.now_ms(),
        )
        .await?;
    match checked {
        PostCheck::Clear => {}
        // We read an old state; a newer generation already exists.
        PostCheck::Overtaken => return Ok(Outcome::Missed),
        PostCheck::Mismatch(existing) => {
            // Someone took the lock with another limit at the same time.
            if ledger.release(&request.name, &generation).await? {
                backend.events.released_here(&key, &generation.marker());
            }
            return Err(mismatch(request, existing));
        }
    }
    backend.published_take(request, &generation, replaces.as_ref());
    Ok(Outcome::Granted {
        grant: MongoGrant::grant(request, generation),
        sent,
    })
}

/// True when a waiter may take `freed` without a survey: the same limit,
/// a slot it has, told recently enough to act on.
fn usable(freed: &Freed, request: &AcquireRequest, now_ms: i64) -> bool {
    freed.limit == request.limit
        && freed.slot >= 0
        && (freed.slot as u32) < request.limit
        && now_ms - freed.at_ms < FRESHNESS.as_millis() as i64
}

fn mismatch(request: &AcquireRequest, existing: u32) -> Error {
    Error::LimitMismatch {
        name: request.name.clone(),
        requested: request.limit,
        existing: Some(existing),
    }
}

/// The local instant for server time `at_ms`, a holder's expiry with its
/// allowance (or `fallback` when unknown).
fn local_at(backend: &MongoBackend, at_ms: Option<i64>, fallback: Instant) -> Instant {
    match at_ms {
        Some(at) => {
            let ahead = at.saturating_sub(backend.clock.now_ms()).max(1) as u64;
            Instant::now() + Duration::from_millis(ahead)
        }
        None => fallback,
    }
}

/// Where a call's first attempt starts: at a slot a release seen here
/// freed (its marker still the newest generation known), else a survey.
fn first_start(backend: &MongoBackend, request: &AcquireRequest) -> Start {
    let key = backend.key(&request.name);
    match backend.events.known.free_slot(&key, request.limit) {
        Some(freed) => Start::Freed(freed),
        None => Start::Survey,
    }
}

/// `try_acquire`: attempts until one is not a lost race (a few at most).
pub(super) async fn try_once(
    backend: &MongoBackend,
    request: &AcquireRequest,
) -> Result<Option<(Grant, Instant)>> {
    for round in 0..RACE_RETRIES {
        let start = match round {
            0 => first_start(backend, request),
            _ => Start::Survey,
        };
        match attempt(backend, request, start).await? {
            Outcome::Granted { grant, sent } => return Ok(Some((grant, sent))),
            Outcome::Busy { .. } => return Ok(None),
            Outcome::Missed => race_backoff(round).await,
        }
    }
    Ok(None)
}

/// Takes `request`'s lock, waiting until `until` (see the module docs).
pub(super) async fn acquire(
    backend: &MongoBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
) -> Result<Acquisition> {
    let key = backend.key(&request.name);
    let (waiter, ahead) = backend.events.waiters.join(&key);
    if request.limit == 1 && until.is_none_or(|until| until > Instant::now()) {
        // A holder here may hand its lease straight over (not to a call
        // that does not wait: it would leave before taking it).
        waiter.wants(Wanted {
            request: request.clone(),
            unit: backend.unit(request.ttl),
        });
    }
    let granted = |grant, sent| Acquisition::Granted {
        grant,
        proven_from: sent,
    };
    // The holders' own TTL is unknown here: survey after one of ours.
    let fallback = || Instant::now() + request.ttl;
    // Others queued ahead, or this process holds every slot: the release
    // comes here first; a call that waits parks without a read. A call
    // that does not wait always makes its attempt: what this process
    // believes it holds can be stale (an operator's forced release is
    // known here only once the holder's renewal hears of it).
    let waits = until.is_none_or(|until| until > Instant::now());
    let parked = waits && (ahead > 0 || backend.events.full_here(&key, request.limit));
    let mut next = (!parked).then(|| first_start(backend, request));
    let mut misses = 0;
    let mut failures = 0u32;
    loop {
        if let Some(start) = next.take() {
            let surveyed = matches!(start, Start::Survey);
            let outcome = match attempt(backend, request, start).await {
                Ok(outcome) => outcome,
                // The server is away for a moment (a restart, a cut
                // connection): a waiter keeps waiting, and looks again.
                Err(error) if error.is_transient() && until.is_none_or(|u| Instant::now() < u) => {
                    failures += 1;
                    tracing::debug!(%error, "a MongoDB acquisition attempt failed; looking again");
                    let pause = (TRANSIENT_PAUSE * failures.min(20)).min(TRANSIENT_PAUSE_MAX);
                    let resume =
                        until.map_or(Instant::now() + pause, |u| u.min(Instant::now() + pause));
                    tokio::select! {
                        _ = tokio::time::sleep_until(resume) => {}
                        _ = signals.caller_gone() => return Ok(Acquisition::CallerGone),
                    }
                    next = Some(Start::Survey);
                    continue;
                }
                Err(error) => return Err(error),
            };
            failures = 0;
            match outcome {
                Outcome::Granted { grant, sent } => return Ok(granted(grant, sent)),
                Outcome::Busy { wake_at_ms } => {
                    waiter.recheck_at(Some(local_at(backend, wake_at_ms, fallback())));
                    misses = 0;
                }
                // Lost a freed slot to another contender: it holds the slot
                // now, and its take or its event sets the recheck.
                Outcome::Missed if !surveyed => {}
                Outcome::Missed => {
                    // The survey's state was old, or a race was lost: look
                    // again soon, a little later each time.
                    misses += 1;
                    let pause = RECHECK_AFTER_RACE * misses.min(20);
                    waiter.recheck_at(Some(Instant::now() + pause));
                }
            }
        }
        if until.is_some_and(|until| Instant::now() >= until) {
            return Ok(Acquisition::Busy);
        }
        signals.started();
        let turn = tokio::select! {
            turn = waiter.next_turn(until, fallback()) => turn,
            _ = signals.caller_gone() => return Ok(Acquisition::CallerGone),
        };
        next = match turn {
            Turn::Freed(freed) => Some(Start::Freed(freed)),
            Turn::Handed(handed) => {
                let (grant, sent) = handed.taken();
                return Ok(granted(grant, sent));
            }
            Turn::Recheck => Some(Start::Survey),
            Turn::Deadline => return Ok(Acquisition::Busy),
        };
    }
}

impl MongoBackend {
    /// Publishes a take's events and moves its head hint, off the caller's
    /// path.
    pub(super) fn published_take(
        &self,
        request: &AcquireRequest,
        taken: &Generation,
        replaced: Option<&Generation>,
    ) {
        let coll = self.ledger.collection();
        self.events.taken_here(&self.key(&request.name), taken);
        if let Some(expired) = replaced {
            if !expired.unit.is_empty() {
                // Its holder's deadline ran out first; this tells its next
                // renewal, should it come.
                let (sessions, expired) = (self.ledger.sessions.clone(), expired.clone());
                let now = self.clock.now_ms();
                crate::runtime::spawn(async move {
                    let told = sessions.record_end(&expired.unit, &expired.id, false, now);
                    if let Err(error) = told.await {
                        tracing::debug!(%error, "recording a takeover for its old holder failed");
                    }
                });
            }
            self.events.publish(super::events::Published {
                coll,
                name: &request.name,
                kind: LockEventKind::Expired,
                holder: &expired.id,
                token: expired.token,
                generation: expired,
                handed: false,
            });
        }
        self.events.publish(super::events::Published {
            coll,
            name: &request.name,
            kind: LockEventKind::Acquired,
            holder: &taken.id,
            token: taken.token,
            generation: taken,
            handed: false,
        });
        let (ledger, name, semaphore) =
            (self.ledger.clone(), request.name.clone(), request.limit > 1);
        let (slot, gen, token) = (taken.slot, taken.gen, taken.token);
        crate::runtime::spawn(async move {
            ledger.advance(&name, slot, gen).await;
            if semaphore {
                ledger.advance(&name, TICKET_SLOT, token).await;
            }
        });
    }
}

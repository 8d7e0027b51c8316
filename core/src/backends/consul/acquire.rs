//! The Consul backend's own acquire loop (its [`crate::backend::AcquirePolicy`]).
//!
//! One attempt first (unless this client already has waiters queued on the
//! key: arrival order holds within a client). While the lock stays busy the
//! call joins the key's local queue ([`super::wait_queue`]) on the key's
//! shared blocking query ([`super::topics`]) and makes no request at all;
//! when a state shows a free slot, only the first waiter attempts, from
//! that state (one transaction, no read). A semaphore waiter keeps its
//! contender key for the whole call and deletes it when the call ends
//! without a grant (timeout, cancel, error), as HashiCorp's recipe does: a
//! parked waiter writes nothing. Like HashiCorp's clients it keeps its
//! session alive meanwhile (a renewal every half TTL, unless the keeper
//! renews that session for a held lease; no Raft write).

use std::time::Duration;

use tokio::time::Instant;

use super::mutex::{self, Seen, Take, LOCK_DELAY_RETRY};
use super::semaphore::{self, Claim, Keys};
use super::session::{Reserved, SessionRenewal};
use super::topics::Snapshot;
use super::wait_queue::{wait_turn, FreeSlots};
use super::{ConsulAttempt, ConsulBackend, Held};
use crate::backend::{AcquireRequest, Acquisition, WaitSignals};
use crate::error::{Error, Result};

/// How many sessions in a row Consul may invalidate under one call.
const SESSION_RETRIES: usize = 2;
/// Pause before retrying a waiter's failed session renewal.
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// What one turn's attempt came to.
enum Turn {
    Granted {
        token: u64,
        held: Held,
        sent: Instant,
    },
    /// Lost to another client, or the state was already old: wait again.
    Missed,
    /// Free but refused for now (lock-delay): try again after a pause.
    Delayed,
    /// The session is gone: attempt again with a new one.
    SessionGone,
}

/// A session reserved for one call, given back unless it ends in a grant
/// (or, when the call failed in transit, freed as an orphan: a take may
/// have been committed).
struct Session<'a> {
    backend: &'a ConsulBackend,
    request: &'a AcquireRequest,
    reserved: Reserved,
    granted: bool,
    in_doubt: bool,
}

impl<'a> Session<'a> {
    async fn reserve(backend: &'a ConsulBackend, request: &'a AcquireRequest) -> Result<Self> {
        let reserved = backend
            .sessions
            .reserve(&backend.http, &request.name, request.ttl)
            .await?;
        Ok(Session {
            backend,
            request,
            reserved,
            granted: false,
            in_doubt: false,
        })
    }

    /// When a waiting call should next renew its session: half its TTL
    /// before the last proof runs out.
    fn renew_due(&self) -> Instant {
        self.reserved.alive_until - self.reserved.ttl / 2
    }

    /// Keeps a waiting call's session alive, as HashiCorp's clients do (a
    /// renewal is no Raft write; an expiring session would be one, and a
    /// semaphore's contender key would go with it). Skipped when the keeper
    /// renewed it meanwhile (it also renews the client's leases). False
    /// when Consul no longer knows the session.
    async fn keep_alive(&mut self) -> Result<bool> {
        let (sessions, id) = (&self.backend.sessions, &self.reserved.id);
        let fresh = |alive: Instant| alive > Instant::now() + self.reserved.ttl / 2;
        if let Some(alive) = sessions.alive_until(id).filter(|a| fresh(*a)) {
            self.reserved.alive_until = alive;
            return Ok(true);
        }
        match sessions.renew(&self.backend.http, id).await? {
            SessionRenewal::Alive(_) => {
                if let Some(alive) = sessions.alive_until(id) {
                    self.reserved.alive_until = alive;
                }
                Ok(true)
            }
            SessionRenewal::Gone => Ok(false),
        }
    }

    /// Swaps an invalidated session for a new one.
    async fn replace(&mut self, request: &AcquireRequest) -> Result<()> {
        self.backend.sessions.forget_session(&self.reserved.id);
        self.reserved = self
            .backend
            .sessions
            .reserve(&self.backend.http, &request.name, request.ttl)
            .await?;
        Ok(())
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        if self.in_doubt {
            let id = std::mem::take(&mut self.reserved.id);
            self.backend.free_in_doubt(self.request, id);
        } else {
            self.backend
                .sessions
                .unreserve(&self.reserved.id, &self.request.name);
        }
    }
}

/// Takes `request`'s lock, waiting until `until`.
pub(super) async fn acquire(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
) -> Result<Acquisition> {
    let mut session = Session::reserve(backend, request).await?;
    let outcome = if request.limit == 1 {
        acquire_mutex(backend, request, until, signals, &mut session).await
    } else {
        acquire_semaphore(backend, request, until, signals, &mut session).await
    };
    match &outcome {
        Ok(Acquisition::Granted { .. }) => session.granted = true,
        Err(error) if error.is_transient() => session.in_doubt = true,
        _ => {}
    }
    outcome
}

async fn acquire_mutex(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
    session: &mut Session<'_>,
) -> Result<Acquisition> {
    let key = backend.key(&request.name);
    let value = request.value.as_bytes();
    let mut seen = 0;
    if !has_waiters(backend, &key, false) {
        for _ in 0..SESSION_RETRIES {
            let sent = Instant::now();
            let attempt = mutex::try_acquire(
                &backend.http,
                &backend.released,
                &request.name,
                &key,
                &session.reserved.id,
                value,
            )
            .await?;
            match attempt {
                ConsulAttempt::Acquired { token, held } => {
                    return Ok(granted(backend, request, session, token, held, sent))
                }
                ConsulAttempt::SessionGone => session.replace(request).await?,
                ConsulAttempt::Busy(marker) => {
                    // Held back by a lock-delay, the key is free and stays
                    // unchanged: the topic's first state already counts.
                    if marker.retry_after.is_none() {
                        seen = marker.version;
                    }
                    break;
                }
            }
        }
    }
    let free_key = key.clone();
    let free: FreeSlots = Box::new(move |s: &Snapshot| mutex::free_slots(&free_key, s));
    park(
        backend,
        request,
        until,
        signals,
        session,
        Parking {
            key: &key,
            recurse: false,
            free,
            seen,
            replaceable: true,
        },
        |session, snapshot| {
            let key = &key;
            async move {
                let seen = mutex::classify(&request.name, key, snapshot.pair(key))?;
                if seen == Seen::Held {
                    return Ok(Turn::Missed);
                }
                let sent = Instant::now();
                Ok(
                    match mutex::take(&backend.http, key, &session, value, seen).await? {
                        Take::Acquired { token, held } => Turn::Granted { token, held, sent },
                        Take::Changed => Turn::Missed,
                        Take::Delayed => Turn::Delayed,
                        Take::SessionGone => Turn::SessionGone,
                    },
                )
            }
        },
    )
    .await
}

async fn acquire_semaphore(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
    session: &mut Session<'_>,
) -> Result<Acquisition> {
    let prefix = backend.key(&request.name);
    let value = request.value.as_bytes();
    let mut entered = None;
    for _ in 0..SESSION_RETRIES {
        let keys = Keys::new(&prefix, &session.reserved.id);
        if semaphore::enter(&backend.http, &keys, &session.reserved.id, value).await? {
            entered = Some(keys);
            break;
        }
        session.replace(request).await?;
    }
    let Some(keys) = entered else {
        return Err(sessions_invalidated());
    };
    let outcome = hold_slot(backend, request, until, signals, session, &keys).await;
    if !matches!(outcome, Ok(Acquisition::Granted { .. })) {
        semaphore::leave(&backend.http, &keys).await;
    }
    outcome
}

/// The semaphore call once its contender key is in place.
async fn hold_slot(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
    session: &mut Session<'_>,
    keys: &Keys,
) -> Result<Acquisition> {
    let id = session.reserved.id.clone();
    let mut seen = 0;
    if !has_waiters(backend, &keys.prefix, true) {
        let sent = Instant::now();
        let attempt =
            semaphore::try_claim(&backend.http, &request.name, keys, &id, request.limit).await?;
        match attempt {
            ConsulAttempt::Acquired { token, held } => {
                return Ok(granted(backend, request, session, token, held, sent))
            }
            ConsulAttempt::Busy(marker) => seen = marker.version,
            ConsulAttempt::SessionGone => {}
        }
    }
    let (free_keys, limit) = (
        Keys::new(&keys.prefix[..keys.prefix.len() - 1], &id),
        request.limit,
    );
    let free: FreeSlots =
        Box::new(move |s: &Snapshot| semaphore::free_slots(&free_keys, limit, &s.pairs));
    park(
        backend,
        request,
        until,
        signals,
        session,
        Parking {
            key: &keys.prefix,
            recurse: true,
            free,
            seen,
            // Its contender key went with the old session.
            replaceable: false,
        },
        |session, snapshot| async move {
            let sent = Instant::now();
            Ok(
                match semaphore::claim(
                    &backend.http,
                    &request.name,
                    keys,
                    &session,
                    request.limit,
                    &snapshot.pairs,
                )
                .await?
                {
                    Claim::Acquired { token, held } => Turn::Granted { token, held, sent },
                    Claim::Full | Claim::Raced => Turn::Missed,
                },
            )
        },
    )
    .await
}

/// True once `until` has passed (a try: no waiting, no blocking query).
fn out_of_time(until: Option<Instant>) -> bool {
    until.is_some_and(|until| Instant::now() >= until)
}

/// True when this client already has waiters queued on `key`.
fn has_waiters(backend: &ConsulBackend, key: &str, recurse: bool) -> bool {
    backend
        .topics
        .existing(key, recurse)
        .is_some_and(|topic| topic.queue().len() > 0)
}

/// Where and how a call waits.
struct Parking<'k> {
    /// The key (or, with `recurse`, the prefix) whose shared query and
    /// local queue the call waits on.
    key: &'k str,
    recurse: bool,
    /// How many slots a state leaves free for this call.
    free: FreeSlots,
    /// The index at which this call found the lock busy itself.
    seen: u64,
    /// Whether a session Consul dropped meanwhile may be swapped for a new
    /// one (a mutex), or ends the call (a semaphore: its contender key went).
    replaceable: bool,
}

/// Waits in the key's queue, keeping the session alive, and runs `attempt`
/// on each turn until it is granted, `until` passes or the caller goes
/// away. Past `until` already (a try), it returns at once without starting
/// a blocking query.
async fn park<'s, F, Fut>(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    until: Option<Instant>,
    signals: &mut WaitSignals<'_>,
    session: &mut Session<'s>,
    parking: Parking<'_>,
    attempt: F,
) -> Result<Acquisition>
where
    F: Fn(String, std::sync::Arc<Snapshot>) -> Fut,
    Fut: std::future::Future<Output = Result<Turn>>,
{
    if out_of_time(until) {
        return Ok(Acquisition::Busy);
    }
    signals.started();
    let topic = backend.topics.get(parking.key, parking.recurse);
    let queue = topic.queue();
    let (id, wake) = queue.join(parking.free, parking.seen);
    queue.dispatch(topic.current().as_deref());
    let mut used = None;
    let mut session_retries = 0;
    let mut renew_at = session.renew_due();
    let outcome = loop {
        let turn = tokio::select! {
            turn = wait_turn(queue, id, &wake, until) => turn,
            _ = tokio::time::sleep_until(renew_at) => {
                match session.keep_alive().await {
                    Ok(true) => renew_at = session.renew_due(),
                    Ok(false) if parking.replaceable => match session.replace(request).await {
                        Ok(()) => renew_at = session.renew_due(),
                        Err(error) => break Err(error),
                    },
                    Ok(false) => break Err(Error::Connection(format!(
                        "consul ended this waiter's session {} (was the agent out of reach \
                         for its TTL?); its place among the semaphore's contenders went with it",
                        session.reserved.id
                    ))),
                    Err(error) => {
                        tracing::debug!(%error, "renewing a waiter's consul session failed; retrying");
                        renew_at = Instant::now() + RENEW_RETRY;
                    }
                }
                continue;
            }
            _ = signals.caller_gone() => break Ok(Acquisition::CallerGone),
        };
        if !turn {
            break Ok(Acquisition::Busy);
        }
        let Some(snapshot) = topic.current() else {
            continue; // a turn is only given from a published state
        };
        used = Some(snapshot.index);
        match attempt(session.reserved.id.clone(), snapshot.clone()).await {
            Ok(Turn::Granted { token, held, sent }) => {
                break Ok(granted(backend, request, session, token, held, sent))
            }
            Ok(Turn::Missed) => queue.attempted(id, snapshot.index, topic.current().as_deref()),
            Ok(Turn::Delayed) => {
                // Keeps the turn: the others would meet the same delay.
                let pause = Instant::now() + LOCK_DELAY_RETRY;
                let pause = until.map_or(pause, |u| u.min(pause));
                tokio::select! {
                    _ = tokio::time::sleep_until(pause) => {}
                    _ = signals.caller_gone() => break Ok(Acquisition::CallerGone),
                }
                if out_of_time(until) {
                    break Ok(Acquisition::Busy);
                }
            }
            Ok(Turn::SessionGone) if session_retries < SESSION_RETRIES => {
                session_retries += 1;
                if let Err(error) = session.replace(request).await {
                    break Err(error);
                }
            }
            Ok(Turn::SessionGone) => break Err(sessions_invalidated()),
            Err(error) => break Err(error),
        }
    };
    queue.leave(id, used, topic.current().as_deref());
    outcome
}

/// The grant of a lock taken with `session`'s session.
fn granted(
    backend: &ConsulBackend,
    request: &AcquireRequest,
    session: &mut Session<'_>,
    token: u64,
    held: Held,
    sent: Instant,
) -> Acquisition {
    session.granted = true;
    Acquisition::Granted {
        grant: backend.grant(request, session.reserved.clone(), token, held),
        proven_from: sent,
    }
}

fn sessions_invalidated() -> Error {
    Error::Backend(
        "consul invalidated two new sessions in a row; is session_ttl_min above the lock TTL?"
            .into(),
    )
}

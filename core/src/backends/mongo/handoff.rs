//! Handing a released mutex lease straight to a waiter in this process: the
//! release is the insert of the next generation in the waiter's name (its
//! value, TTL and renewal unit), with no release marker in between. One
//! request instead of three (marker, the waiter's insert, its post-check).
//!
//! Safe without a post-check: the slot never looks free to anyone (the
//! releaser's generation is live until the next one, live too, exists), so
//! a semaphore racing on the name finds a live mutex holder in its own
//! post-check and backs out, as it would from the releaser. That holds only
//! while the releaser's lease is surely live: a lease within
//! [`HANDOFF_MARGIN`] of its proven expiry is released with a marker as
//! usual. The insert is unique like every take: if the releaser's lease
//! was taken over or force-released, the insert loses and the release
//! reports the loss.

use std::time::Duration;

use tokio::time::Instant;

use super::events::Published;
use super::plan::{doc_id, Generation};
use super::waiters::Handed;
use super::{release_marked, MongoBackend, MongoGrant};
use crate::error::Result;
use crate::model::LockEventKind;

/// A lease this close to its proven expiry is not handed over.
const HANDOFF_MARGIN: Duration = Duration::from_secs(1);

/// What became of a release offered to a waiter.
pub(super) enum Handoff {
    /// Nobody here waits for it (or it is not a mutex lease surely live).
    NoTaker,
    /// A waiter holds it now.
    Handed,
    /// The next generation exists already: the lease was not ours any more.
    Lost,
}

impl MongoBackend {
    /// Hands `held` (a lease of `name` this client holds) to a waiter here.
    pub(super) async fn hand_over(&self, name: &str, held: &Generation) -> Result<Handoff> {
        if held.limit != 1 || held.slot != 0 || !self.surely_live(held) {
            return Ok(Handoff::NoTaker);
        }
        let key = self.key(name);
        let Some((waiter, wanted)) = self.events.waiters.reserve(&key) else {
            return Ok(Handoff::NoTaker);
        };
        let request = &wanted.request;
        let gen = held.gen + 1;
        let taken = Generation {
            id: doc_id(name, 0, gen),
            slot: 0,
            gen,
            limit: 1,
            expires_at: self.clock.now_ms() + request.ttl.as_millis() as i64,
            released: false,
            token: gen,
            unit: wanted.unit.clone(),
        };
        let sent = Instant::now();
        let won = match self.ledger.insert(name, &taken, &request.value).await {
            Ok(won) => won,
            Err(error) => {
                self.events.waiters.unreserve(&key, waiter);
                return Err(error);
            }
        };
        if !won {
            self.events.waiters.unreserve(&key, waiter);
            return Ok(Handoff::Lost);
        }
        self.events.publish(Published {
            coll: self.ledger.collection(),
            name,
            kind: LockEventKind::Released,
            holder: &held.id,
            token: held.token,
            generation: held,
            handed: true,
        });
        self.published_take(request, &taken, None);
        let grant = MongoGrant::grant(request, taken.clone());
        let orphaned = {
            let (ledger, events, name) =
                (self.ledger.clone(), self.events.clone(), name.to_string());
            Box::new(move || {
                crate::runtime::spawn(async move {
                    events.let_go_here(&ledger.key(&name));
                    if let Err(error) = release_marked(&ledger, &events, &name, &taken).await {
                        tracing::debug!(%error, "releasing a lease its waiter left failed");
                    }
                });
            })
        };
        if let Some(handed) =
            self.events
                .waiters
                .hand(&key, waiter, Handed::new(grant, sent, orphaned))
        {
            handed.orphan();
        }
        Ok(Handoff::Handed)
    }

    /// True while `held` is live by more than [`HANDOFF_MARGIN`], by its
    /// own expiry or its unit's last proven session expiry.
    fn surely_live(&self, held: &Generation) -> bool {
        let proven = self.proven().get(&held.unit).copied().unwrap_or(0);
        let live_until = held.expires_at.max(proven);
        live_until - self.clock.now_ms() > HANDOFF_MARGIN.as_millis() as i64
    }
}

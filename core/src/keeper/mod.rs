//! The keeper: one task per client that renews every lease and declares a
//! lease lost when it cannot prove it before the lease's local deadline.
//!
//! Leases are grouped in renewal units ([`Grant::renewal_unit`]): all leases
//! on one Consul session form one unit and are renewed by one call, so a
//! client holding many locks costs O(sessions) renewals per interval, not
//! O(locks); a grant without a unit is renewed on its own. A unit is renewed
//! every `renew_fraction × ttl` (its shortest TTL), and before its earliest
//! lease's renewal time: a lease joining a unit never waits past its own. A
//! failed renewal is retried sooner ([`Timing`]'s retry delay). A lease's
//! deadline is the send time of the last successful renewal plus its TTL,
//! minus the safety margin; when it passes unproven, the lease is lost,
//! exactly once. Renewals run as their own tasks with a time limit, so one
//! slow backend call never delays another unit's renewal or a deadline.
//!
//! Holding many leases does not slow the keeper down: its book
//! ([`schedule`]) files every lease and unit under the time it next needs
//! the keeper, so a wake-up looks only at what is due, a grant or a
//! renewal's completion costs O(log n) and a release O(log n). Emptied
//! units are dropped. The task holds its client's keeper weakly and stops
//! when the client is dropped.
//!
//! Where the backend can watch a lease ([`Capabilities::loss_watch`]), a
//! watcher per lease reports loss as soon as the backend shows it
//! ([`watchers`]).
//!
//! Files: `mod.rs` (the keeper, its task, renewals), `schedule.rs` (the
//! book), `timing.rs` (renewal times), `watchers.rs` (loss watchers),
//! `tests.rs`.

mod schedule;
#[cfg(test)]
mod tests;
mod timing;
mod watchers;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::{Backend, Capabilities, Grant, LeaseEnd, RenewOutcome};
use crate::error::{Error, Result};
use crate::events::{Event, Observers};
use crate::lease::{LeaseCore, RenewedBy};
use crate::runtime;

#[cfg(test)]
pub(crate) use schedule::Stats;
use schedule::{Book, Renewal, Tick};
pub(crate) use timing::Timing;
use watchers::Watchers;

struct Shared {
    backend: Arc<dyn Backend>,
    observers: Observers,
    timing: Timing,
    book: Mutex<Book>,
    wake: Arc<Notify>,
    /// Set where the backend can watch leases.
    watchers: Option<Watchers>,
}

/// The keeper of one client. Dropping it stops its task.
pub(crate) struct Keeper {
    shared: Arc<Shared>,
}

impl Keeper {
    pub(crate) fn start(backend: Arc<dyn Backend>, observers: Observers, timing: Timing) -> Self {
        let keeper = Keeper::new(backend, observers, timing, true);
        runtime::spawn(run(
            Arc::downgrade(&keeper.shared),
            keeper.shared.wake.clone(),
        ));
        keeper
    }

    /// A keeper; with `watch`, also its watcher task where the backend can
    /// watch leases. Its own task is started by [`Keeper::start`].
    fn new(backend: Arc<dyn Backend>, observers: Observers, timing: Timing, watch: bool) -> Self {
        let capabilities: Capabilities = backend.capabilities();
        let shared = Arc::new_cyclic(|shared: &Weak<Shared>| Shared {
            watchers: (watch && capabilities.loss_watch)
                .then(|| Watchers::start(shared.clone(), backend.clone())),
            backend,
            observers,
            timing,
            book: Mutex::new(Book::new()),
            wake: Arc::new(Notify::new()),
        });
        Keeper { shared }
    }

    pub(crate) fn timing(&self) -> Timing {
        self.shared.timing
    }

    /// Starts keeping a freshly granted lease.
    pub(crate) fn keep(&self, lease: &Arc<LeaseCore>) {
        let shared = &self.shared;
        let sooner = shared.book().add(lease, &shared.timing);
        if let Some(watchers) = &shared.watchers {
            watchers.watch(lease);
        }
        // Only a lease due before the keeper's next look wakes it.
        if sooner {
            shared.wake.notify_one();
        }
    }

    /// Stops keeping a lease that was released.
    pub(crate) fn forget(&self, lease: &Arc<LeaseCore>) {
        self.shared.book().remove(lease);
    }

    /// Stops keeping a lease that was abandoned; the backend stops renewing it.
    pub(crate) fn abandon(&self, lease: &Arc<LeaseCore>) {
        self.forget(lease);
        self.shared
            .backend
            .forget(&lease.grant, LeaseEnd::Abandoned);
    }

    /// Marks a lease lost (once) and tells the observers and the backend.
    pub(crate) fn lose(&self, lease: &LeaseCore, reason: &str) {
        lose(&self.shared, lease, reason);
    }

    /// Renews one lease now, on the caller's request.
    pub(crate) async fn renew_one(&self, lease: &Arc<LeaseCore>) -> Result<()> {
        let shared = &self.shared;
        let sent = Instant::now();
        let outcomes = tokio::time::timeout_at(
            lease.deadline().max(sent + Duration::from_secs(1)),
            shared.backend.renew(std::slice::from_ref(&lease.grant)),
        )
        .await
        .map_err(|_| Error::Connection("the renewal did not complete in time".into()))??;
        match outcomes.into_iter().next() {
            Some(outcome) => {
                apply(shared, lease, outcome, sent, true);
                lease.ensure_held()
            }
            None => Err(Error::Backend(
                "the backend returned no renewal outcome".into(),
            )),
        }
    }

    /// What the keeper's wake-ups cost so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> Stats {
        self.shared.book().stats
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what is due at `now`: declares overdue leases lost and hands
    /// back the renewals to start and when to look again.
    fn tick(&self, now: Instant) -> (Vec<Renewal>, Instant) {
        let (
            Tick {
                renewals, overdue, ..
            },
            next,
        ) = self.book().take_due(now);
        for lease in overdue {
            match lease.renewal() {
                RenewedBy::Keeper => lose(
                    self,
                    &lease,
                    "no renewal proved the lease before its deadline",
                ),
                RenewedBy::Caller => expire(self, &lease),
            }
        }
        (renewals, next)
    }
}

async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = match shared.upgrade() {
            Some(shared) => {
                let (renewals, next) = shared.tick(Instant::now());
                for renewal in renewals {
                    runtime::spawn(renew(shared.clone(), renewal));
                }
                next
            }
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One renewal call, with a time limit (the earliest deadline of its leases,
/// at least 500 ms away), then the next renewal filed.
async fn renew(shared: Arc<Shared>, renewal: Renewal) {
    let leases = renewal.leases();
    let grants: Vec<Arc<Grant>> = leases.iter().map(|l| l.grant.clone()).collect();
    let sent = Instant::now();
    let limit = leases
        .iter()
        .map(|l| l.deadline())
        .min()
        .unwrap_or(sent)
        .max(sent + Duration::from_millis(500));
    let result = tokio::time::timeout_at(limit, shared.backend.renew(&grants)).await;
    let succeeded = match result {
        Ok(Ok(outcomes)) if outcomes.len() == leases.len() => {
            for (lease, outcome) in leases.iter().zip(outcomes) {
                apply(&shared, lease, outcome, sent, false);
            }
            true
        }
        Ok(Ok(_)) => {
            tracing::error!("backend returned the wrong number of renewal outcomes");
            false
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "renewal failed; retrying");
            false
        }
        Err(_) => {
            tracing::warn!("renewal timed out; retrying");
            false
        }
    };
    drop(grants);
    let sooner = shared
        .book()
        .finish(renewal, succeeded, sent, Instant::now(), &shared.timing);
    if sooner {
        shared.wake.notify_one();
    }
}

/// One renewal's outcome for `lease`; `on_request` when its caller asked
/// for it (only those move a caller-renewed lease's deadline).
fn apply(
    shared: &Shared,
    lease: &Arc<LeaseCore>,
    outcome: RenewOutcome,
    sent: Instant,
    on_request: bool,
) {
    match outcome {
        RenewOutcome::Renewed { ttl } => {
            lease.renewed(shared.timing.deadline(sent, ttl), on_request);
            shared.observers.emit(|| Event::Renewed {
                name: lease.grant.name.clone(),
            });
        }
        RenewOutcome::Lost { reason } => lose(shared, lease, &reason),
    }
}

/// Why a caller-renewed lease ended at its deadline.
pub(crate) const NOT_RENEWED: &str =
    "the lease was not renewed within its TTL (automatic renewal is off)";

/// Declares `lease` lost, once: out of the book, the backend and the
/// observers told.
fn lose(shared: &Shared, lease: &LeaseCore, reason: &str) {
    if declare_lost(shared, lease, reason) {
        shared.backend.forget(&lease.grant, LeaseEnd::Lost);
    }
}

/// Marks `lease` lost (once), out of the book, the observers told; true
/// when this call did.
fn declare_lost(shared: &Shared, lease: &LeaseCore, reason: &str) -> bool {
    if !lease.lose(reason) {
        return false;
    }
    shared.book().remove(lease);
    tracing::warn!(name = %lease.grant.name, %reason, "lease lost");
    shared.observers.emit(|| Event::Lost {
        name: lease.grant.name.clone(),
        reason: reason.to_string(),
        held: lease.acquired_at.elapsed(),
    });
    true
}

/// A caller-renewed lease reached its deadline unrenewed: lost here first
/// (so its holder stops before anyone else can take it), then released on
/// the backend in the background, which may still hold it (a shared
/// renewal unit keeps it alive there). If the release keeps failing, the
/// backend stops renewing it and its TTL frees it.
fn expire(shared: &Shared, lease: &Arc<LeaseCore>) {
    if !declare_lost(shared, lease, NOT_RENEWED) {
        return;
    }
    let (backend, grant) = (shared.backend.clone(), lease.grant.clone());
    runtime::spawn(async move {
        for attempt in 0..3u32 {
            match backend.release(&grant).await {
                Err(error) if error.is_transient() => {
                    tracing::debug!(%error, name = %grant.name, "releasing an expired lease failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                _ => return,
            }
        }
        backend.forget(&grant, LeaseEnd::Abandoned);
    });
}

//! The keeper: one task per client that renews every lease and declares a
//! lease lost when it cannot prove it before the lease's local deadline.
//!
//! Leases are grouped in renewal units ([`Grant::renewal_unit`]): all leases
//! on one Consul session form one unit and are renewed by one call, so a
//! client holding many locks costs O(sessions) renewals per interval, not
//! O(locks). A unit is renewed every `renew_fraction × ttl` (its shortest
//! TTL); a failed renewal is retried sooner. A lease's deadline is the send
//! time of the last successful renewal plus its TTL, minus the safety margin;
//! when it passes, the lease is lost. Renewals run as their own tasks with a
//! time limit, so one slow backend call never delays another unit's renewal
//! or a deadline.
//!
//! Where the backend can watch a lease ([`Capabilities::loss_watch`]), a
//! watcher task per lease reports loss as soon as the backend shows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::{Backend, Capabilities, Grant, LeaseEnd, RenewOutcome};
use crate::error::{Error, Result};
use crate::events::{Event, Observers};
use crate::lease::LeaseCore;
use crate::runtime;

/// How long the keeper sleeps when it has nothing to do.
const IDLE: Duration = Duration::from_secs(3600);

/// Renewal timing for one client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub renew_fraction: f64,
    pub safety_fraction: f64,
}

impl Timing {
    /// When a lease renewed (or granted) at `sent` for `ttl` stops being proven.
    pub(crate) fn deadline(&self, sent: Instant, ttl: Duration) -> Instant {
        sent + ttl.mul_f64(1.0 - self.safety_fraction)
    }

    fn interval(&self, ttl: Duration) -> Duration {
        ttl.mul_f64(self.renew_fraction)
    }

    /// When a lease with this deadline should be renewed: as early before
    /// the deadline as a fresh lease would be (`renew_fraction` after its grant).
    pub(crate) fn renew_at(&self, deadline: Instant, ttl: Duration) -> Instant {
        deadline - ttl.mul_f64(1.0 - self.renew_fraction - self.safety_fraction)
    }

    fn retry_delay(&self, ttl: Duration) -> Duration {
        (self.interval(ttl) / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UnitKey {
    Shared(String),
    Lease(u64),
}

impl UnitKey {
    fn of(lease: &LeaseCore) -> Self {
        match &lease.grant.renewal_unit {
            Some(unit) => UnitKey::Shared(unit.clone()),
            None => UnitKey::Lease(lease.id),
        }
    }
}

struct Unit {
    leases: Vec<Arc<LeaseCore>>,
    next_renew: Instant,
    in_flight: bool,
}

impl Unit {
    fn shortest_ttl(&self) -> Duration {
        self.leases
            .iter()
            .map(|l| l.grant.ttl)
            .min()
            .unwrap_or(Duration::from_secs(1))
    }
}

struct Shared {
    backend: Arc<dyn Backend>,
    observers: Observers,
    timing: Timing,
    capabilities: Capabilities,
    units: Mutex<HashMap<UnitKey, Unit>>,
    /// When the keeper's task looks again; read and written only with
    /// `units` locked, so a change is compared with the wake-up that saw it.
    next_tick: Mutex<Instant>,
    wake: Arc<Notify>,
}

/// The keeper of one client. Dropping it stops its task.
pub(crate) struct Keeper {
    shared: Arc<Shared>,
}

impl Keeper {
    pub(crate) fn start(backend: Arc<dyn Backend>, observers: Observers, timing: Timing) -> Self {
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            capabilities: backend.capabilities(),
            backend,
            observers,
            timing,
            units: Mutex::new(HashMap::new()),
            next_tick: Mutex::new(Instant::now()),
            wake: wake.clone(),
        });
        runtime::spawn(run(Arc::downgrade(&shared), wake));
        Keeper { shared }
    }

    pub(crate) fn timing(&self) -> Timing {
        self.shared.timing
    }

    /// Starts keeping a freshly granted lease.
    pub(crate) fn keep(&self, lease: &Arc<LeaseCore>) {
        let shared = &self.shared;
        let key = UnitKey::of(lease);
        let wake = {
            let mut units = shared.units();
            let renew_at = shared.timing.renew_at(lease.deadline(), lease.grant.ttl);
            let unit = units.entry(key).or_insert_with(|| Unit {
                leases: Vec::new(),
                next_renew: renew_at,
                in_flight: false,
            });
            // A lease joining a unit must not wait past its own renewal time.
            unit.next_renew = unit.next_renew.min(renew_at);
            unit.leases.push(lease.clone());
            shared.is_earlier(renew_at)
        };
        if shared.capabilities.loss_watch {
            let watching = Arc::downgrade(shared);
            let watched = Arc::downgrade(lease);
            let backend = shared.backend.clone();
            let grant = lease.grant.clone();
            let watcher = runtime::spawn(async move {
                let reason = backend.watch(&grant).await;
                if let (Some(shared), Some(lease)) = (watching.upgrade(), watched.upgrade()) {
                    lose(&shared, &lease, &reason);
                }
            });
            lease.set_watcher(watcher.abort_handle());
        }
        // Only a lease due before the keeper's next look wakes it: waking it
        // for every grant would scan every lease once per grant.
        if wake {
            shared.wake.notify_one();
        }
    }

    /// Stops keeping a lease that was released.
    pub(crate) fn forget(&self, lease: &Arc<LeaseCore>) {
        let key = UnitKey::of(lease);
        let mut units = self.shared.units();
        if let Some(unit) = units.get_mut(&key) {
            unit.leases.retain(|l| !Arc::ptr_eq(l, lease));
            if unit.leases.is_empty() && !unit.in_flight {
                units.remove(&key);
            }
        }
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
                apply(shared, lease, outcome, sent);
                lease.ensure_held()
            }
            None => Err(Error::Backend(
                "the backend returned no renewal outcome".into(),
            )),
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn units(&self) -> MutexGuard<'_, HashMap<UnitKey, Unit>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `at` comes before the keeper's next look. Call with
    /// `units` locked.
    fn is_earlier(&self, at: Instant) -> bool {
        let next_tick = self.next_tick.lock().unwrap_or_else(|p| p.into_inner());
        at < *next_tick
    }

    /// Expires overdue leases, starts due renewals; returns when to look again.
    fn tick(self: &Arc<Self>) -> Instant {
        let now = Instant::now();
        let mut next = now + IDLE;
        let mut overdue = Vec::new();
        let mut due = Vec::new();
        {
            let mut units = self.units();
            units.retain(|key, unit| {
                unit.leases.retain(|lease| lease.is_kept());
                if unit.leases.is_empty() {
                    return unit.in_flight;
                }
                for lease in &unit.leases {
                    let deadline = lease.deadline();
                    if deadline <= now {
                        overdue.push(lease.clone());
                    } else {
                        next = next.min(deadline);
                    }
                }
                if !unit.in_flight {
                    if unit.next_renew <= now {
                        unit.in_flight = true;
                        due.push((key.clone(), unit.leases.clone()));
                    } else {
                        next = next.min(unit.next_renew);
                    }
                }
                true
            });
            *self.next_tick.lock().unwrap_or_else(|p| p.into_inner()) = next;
        }
        for lease in overdue {
            lose(
                self,
                &lease,
                "no renewal proved the lease before its deadline",
            );
        }
        for (key, leases) in due {
            runtime::spawn(renew_unit(self.clone(), key, leases));
        }
        next
    }
}

async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = match shared.upgrade() {
            Some(shared) => shared.tick(),
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = wake.notified() => {}
        }
    }
}

async fn renew_unit(shared: Arc<Shared>, key: UnitKey, leases: Vec<Arc<LeaseCore>>) {
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
                apply(&shared, lease, outcome, sent);
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
    let wake = {
        let mut units = shared.units();
        match units.get_mut(&key) {
            Some(unit) => {
                unit.in_flight = false;
                let ttl = unit.shortest_ttl();
                unit.next_renew = if succeeded {
                    sent + shared.timing.interval(ttl)
                } else {
                    Instant::now() + shared.timing.retry_delay(ttl)
                };
                // An emptied unit is dropped by the next look, whenever.
                !unit.leases.is_empty() && shared.is_earlier(unit.next_renew)
            }
            None => false,
        }
    };
    if wake {
        shared.wake.notify_one();
    }
}

fn apply(shared: &Shared, lease: &Arc<LeaseCore>, outcome: RenewOutcome, sent: Instant) {
    match outcome {
        RenewOutcome::Renewed { ttl } => {
            lease.renewed(shared.timing.deadline(sent, ttl));
            shared.observers.emit(|| Event::Renewed {
                name: lease.grant.name.clone(),
            });
        }
        RenewOutcome::Lost { reason } => lose(shared, lease, &reason),
    }
}

fn lose(shared: &Shared, lease: &LeaseCore, reason: &str) {
    if lease.lose(reason) {
        tracing::warn!(name = %lease.grant.name, %reason, "lease lost");
        shared.backend.forget(&lease.grant, LeaseEnd::Lost);
        shared.observers.emit(|| Event::Lost {
            name: lease.grant.name.clone(),
            reason: reason.to_string(),
            held: lease.acquired_at.elapsed(),
        });
    }
}

//! Leases: the state every lease shares with the keeper ([`LeaseCore`]) and
//! the public async handle ([`Lease`]).
//!
//! A lease moves Held → Releasing → Released, or to Lost exactly once, or to
//! Abandoned. Lost callbacks fire once each, after the lease turned Lost, on
//! polylock's notifier thread (outside the runtime), with panics caught.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::backend::Grant;
use crate::client::ClientInner;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::runtime;

/// What a lost callback is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvent {
    /// The lock's name.
    pub name: String,
    /// The backend's holder id of the lost lease.
    pub holder: String,
    /// The lost lease's fencing token.
    pub fencing_token: Option<u64>,
    /// Why the lease was lost.
    pub reason: String,
}

/// A callback run once when a lease is lost.
pub type LostCallback = Box<dyn FnOnce(&LostEvent) + Send + 'static>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Held,
    Releasing,
    Released,
    Lost(String),
    Abandoned,
}

/// How a lease ended, published to [`LeaseCore::lost`] waiters.
#[derive(Debug, Clone)]
enum Ending {
    Running,
    Lost(LostEvent),
    Ended,
}

struct State {
    status: Status,
    /// Local deadline (monotonic, safety margin already taken off).
    deadline: Instant,
    callbacks: Vec<LostCallback>,
    watcher: Option<AbortHandle>,
}

/// The state of one lease, shared by its handle and the keeper.
pub(crate) struct LeaseCore {
    pub(crate) id: u64,
    pub(crate) grant: Arc<Grant>,
    pub(crate) value: String,
    /// When the lease was granted (for hold-time metrics).
    pub(crate) acquired_at: Instant,
    state: Mutex<State>,
    ending: watch::Sender<Ending>,
}

impl LeaseCore {
    pub(crate) fn new(id: u64, grant: Grant, value: String, deadline: Instant) -> Self {
        LeaseCore {
            id,
            grant: Arc::new(grant),
            value,
            acquired_at: Instant::now(),
            state: Mutex::new(State {
                status: Status::Held,
                deadline,
                callbacks: Vec::new(),
                watcher: None,
            }),
            ending: watch::channel(Ending::Running).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Held or being released: the keeper still renews it.
    pub(crate) fn is_kept(&self) -> bool {
        matches!(self.state().status, Status::Held | Status::Releasing)
    }

    pub(crate) fn is_held(&self) -> bool {
        let state = self.state();
        state.status == Status::Held && state.deadline > Instant::now()
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.state().deadline
    }

    pub(crate) fn set_watcher(&self, watcher: AbortHandle) {
        let mut state = self.state();
        if matches!(state.status, Status::Held | Status::Releasing) {
            state.watcher = Some(watcher);
        } else {
            watcher.abort();
        }
    }

    /// A renewal sent before `deadline`'s basis succeeded.
    pub(crate) fn renewed(&self, deadline: Instant) {
        let mut state = self.state();
        if matches!(state.status, Status::Held | Status::Releasing) && deadline > state.deadline {
            state.deadline = deadline;
        }
    }

    /// Marks the lease lost unless it already ended; fires the callbacks.
    /// Returns true when this call made it lost.
    pub(crate) fn lose(&self, reason: &str) -> bool {
        let (callbacks, watcher) = {
            let mut state = self.state();
            if !matches!(state.status, Status::Held | Status::Releasing) {
                return false;
            }
            state.status = Status::Lost(reason.to_string());
            (std::mem::take(&mut state.callbacks), state.watcher.take())
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        let event = self.lost_event(reason);
        self.ending.send_replace(Ending::Lost(event.clone()));
        fire_callbacks(callbacks, event);
        true
    }

    fn lost_event(&self, reason: &str) -> LostEvent {
        LostEvent {
            name: self.grant.name.clone(),
            holder: self.grant.holder.clone(),
            fencing_token: self.grant.fencing_token,
            reason: reason.to_string(),
        }
    }

    /// Registers a callback; runs it at once (on the notifier thread) if the
    /// lease is lost already, and never if it was released or abandoned.
    pub(crate) fn on_lost(&self, callback: LostCallback) {
        let mut state = self.state();
        match &state.status {
            Status::Held | Status::Releasing => state.callbacks.push(callback),
            Status::Lost(reason) => {
                let event = self.lost_event(reason);
                drop(state);
                fire_callbacks(vec![callback], event);
            }
            Status::Released | Status::Abandoned => {}
        }
    }

    /// Held → Releasing; the error says why a release cannot start.
    pub(crate) fn begin_release(&self) -> Result<()> {
        let mut state = self.state();
        match &state.status {
            Status::Held => {
                state.status = Status::Releasing;
                if let Some(watcher) = state.watcher.take() {
                    watcher.abort();
                }
                Ok(())
            }
            Status::Lost(reason) => Err(Error::Lost {
                name: self.grant.name.clone(),
                reason: reason.clone(),
            }),
            other => Err(Error::NotHeld {
                name: self.grant.name.clone(),
                reason: match other {
                    Status::Releasing => "a release is already in progress",
                    Status::Abandoned => "the lease was abandoned",
                    _ => "the lease was released already",
                }
                .into(),
            }),
        }
    }

    /// Ends a release that [`begin_release`](Self::begin_release) started.
    /// On failure the lease is Held again (the keeper kept renewing it), so
    /// the caller may retry.
    pub(crate) fn finish_release(&self, released: bool) {
        let mut state = self.state();
        if state.status == Status::Releasing {
            state.status = if released {
                Status::Released
            } else {
                Status::Held
            };
            if released {
                state.callbacks.clear();
                self.ending.send_replace(Ending::Ended);
            }
        }
    }

    /// Held → Abandoned: stop renewing without releasing.
    pub(crate) fn abandon(&self) {
        let mut state = self.state();
        if state.status == Status::Held {
            state.status = Status::Abandoned;
            state.callbacks.clear();
            if let Some(watcher) = state.watcher.take() {
                watcher.abort();
            }
            self.ending.send_replace(Ending::Ended);
        }
    }

    /// The error an operation on a lease that is not Held should return.
    pub(crate) fn ensure_held(&self) -> Result<()> {
        let state = self.state();
        match &state.status {
            Status::Held | Status::Releasing => Ok(()),
            Status::Lost(reason) => Err(Error::Lost {
                name: self.grant.name.clone(),
                reason: reason.clone(),
            }),
            _ => Err(Error::NotHeld {
                name: self.grant.name.clone(),
                reason: "the lease was released or abandoned".into(),
            }),
        }
    }

    pub(crate) fn loss_reason(&self) -> Option<String> {
        match &self.state().status {
            Status::Lost(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Resolves with the loss event, or `None` once the lease ended otherwise.
    pub(crate) async fn lost(&self) -> Option<LostEvent> {
        let mut rx = self.ending.subscribe();
        let ending = rx
            .wait_for(|ending| !matches!(ending, Ending::Running))
            .await
            .map(|ending| ending.clone());
        match ending {
            Ok(Ending::Lost(event)) => Some(event),
            _ => None,
        }
    }
}

/// Runs lost callbacks on the notifier thread, each once, panics caught.
fn fire_callbacks(callbacks: Vec<LostCallback>, event: LostEvent) {
    if callbacks.is_empty() {
        return;
    }
    runtime::notify(Box::new(move || {
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                tracing::error!(name = %event.name, "a lost-lease callback panicked; ignored");
            }
        }
    }));
}

/// A cheap, cloneable reference to a lease and its client, used by the async
/// and blocking handles alike.
#[derive(Clone)]
pub(crate) struct LeaseRef {
    pub(crate) core: Arc<LeaseCore>,
    pub(crate) client: Arc<ClientInner>,
}

impl LeaseRef {
    pub(crate) async fn release(self) -> Result<()> {
        self.client.check_process()?;
        self.core.begin_release()?;
        let result = self.client.backend.release(&self.core.grant).await;
        match &result {
            Ok(()) => {
                self.core.finish_release(true);
                self.client.keeper.forget(&self.core);
                self.client.observers.emit(|| Event::Released {
                    name: self.core.grant.name.clone(),
                    held: self.core.acquired_at.elapsed(),
                });
            }
            Err(Error::Lost { reason, .. }) => {
                self.core.finish_release(false);
                self.client.keeper.lose(&self.core, reason);
            }
            Err(_) => self.core.finish_release(false),
        }
        result
    }

    pub(crate) async fn renew(self) -> Result<()> {
        self.client.check_process()?;
        self.core.ensure_held()?;
        self.client.keeper.renew_one(&self.core).await
    }

    pub(crate) fn time_to_expiration(&self) -> Duration {
        if self.core.is_held() {
            self.core
                .deadline()
                .saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        }
    }

    /// True once the keeper's renewal time for this lease has come.
    pub(crate) fn needs_renew(&self) -> bool {
        let timing = self.client.keeper.timing();
        self.core.is_held()
            && Instant::now() >= timing.renew_at(self.core.deadline(), self.core.grant.ttl)
    }

    /// Stops renewing without releasing.
    pub(crate) fn abandon(self) {
        self.core.abandon();
        self.client.keeper.abandon(&self.core);
    }

    /// Releases in the background; used when a handle is dropped while held.
    pub(crate) fn release_in_background(self) {
        if !self.core.is_kept() {
            return;
        }
        runtime::spawn(async move {
            for attempt in 0..3u32 {
                match self.clone().release().await {
                    Err(e) if e.is_transient() => {
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await
                    }
                    _ => return,
                }
            }
        });
    }
}

/// A held lease. Dropping it while held releases it in the background; call
/// [`Lease::release`] to know the outcome.
pub struct Lease {
    pub(crate) inner: LeaseRef,
    release_on_drop: bool,
}

impl Lease {
    pub(crate) fn new(inner: LeaseRef) -> Self {
        Lease {
            inner,
            release_on_drop: true,
        }
    }

    /// A handle on a lease another owner keeps (a [`crate::LeaseSlot`]):
    /// dropping it does not release the lease.
    pub(crate) fn view(inner: LeaseRef) -> Self {
        Lease {
            inner,
            release_on_drop: false,
        }
    }

    /// Hands the lease to another owner (the blocking guard, a binding),
    /// which takes over releasing it.
    pub(crate) fn into_ref(mut self) -> LeaseRef {
        self.release_on_drop = false;
        self.inner.clone()
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.inner.core.grant.name
    }

    /// The backend's id for this holder (Consul session id, LDLM key, …).
    pub fn holder(&self) -> &str {
        &self.inner.core.grant.holder
    }

    /// The fencing token: strictly increasing per name across grants.
    /// `None` where the backend cannot provide one (LDLM).
    pub fn fencing_token(&self) -> Option<u64> {
        self.inner.core.grant.fencing_token
    }

    /// The TTL the backend granted.
    pub fn ttl(&self) -> Duration {
        self.inner.core.grant.ttl
    }

    /// The lock's limit (1 for a mutex).
    pub fn limit(&self) -> u32 {
        self.inner.core.grant.limit
    }

    /// The holder value stored with the lease.
    pub fn value(&self) -> &str {
        &self.inner.core.value
    }

    /// True while the lease is held and its local deadline has not passed.
    pub fn is_held(&self) -> bool {
        self.inner.core.is_held()
    }

    /// How long the lease is still proven held; zero once it is not.
    pub fn time_to_expiration(&self) -> Duration {
        self.inner.time_to_expiration()
    }

    /// True when a renewal is due (the keeper does it; a caller may too).
    pub fn needs_renew(&self) -> bool {
        self.inner.needs_renew()
    }

    /// Why the lease was lost, once it was.
    pub fn loss_reason(&self) -> Option<String> {
        self.inner.core.loss_reason()
    }

    /// Renews now, without waiting for the keeper.
    pub async fn renew(&self) -> Result<()> {
        runtime::run(self.inner.clone().renew()).await?
    }

    /// Releases the lease. A second call fails with [`Error::NotHeld`]; a
    /// call after the lease was lost fails with [`Error::Lost`].
    pub async fn release(&self) -> Result<()> {
        runtime::run(self.inner.clone().release()).await?
    }

    /// Runs `callback` once if the lease is lost (at once if it already is).
    /// It runs on polylock's notifier thread, where blocking (and the
    /// blocking API) is allowed; a panic in it is caught and logged.
    pub fn on_lost(&self, callback: impl FnOnce(&LostEvent) + Send + 'static) {
        self.inner.core.on_lost(Box::new(callback));
    }

    /// Resolves when the lease is lost; `None` if it was released or abandoned.
    pub async fn lost(&self) -> Option<LostEvent> {
        self.inner.core.lost().await
    }

    /// Stops renewing without releasing, as a crashed process would: the
    /// backend frees the lock when its TTL runs out (on Consul, when no other
    /// lease of this client keeps the shared session alive).
    pub fn abandon(self) {
        self.into_ref().abandon();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.release_on_drop {
            self.inner.clone().release_in_background();
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name())
            .field("holder", &self.holder())
            .field("fencing_token", &self.fencing_token())
            .field("ttl", &self.ttl())
            .field("is_held", &self.is_held())
            .finish()
    }
}

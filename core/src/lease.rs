//! Leases: the state every lease shares with the keeper ([`LeaseCore`]) and
//! the public async handle ([`Lease`]).
//!
//! A lease moves Held → Releasing → Released, or to Lost exactly once, or to
//! Abandoned. Lost callbacks fire once each, after the lease turned Lost, on
//! polylock's notifier thread (outside the runtime), with panics caught.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;
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

/// Who renews a lease ([`crate::LockOptions::auto_renew`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenewedBy {
    /// The keeper renews it until it is released.
    Keeper,
    /// Only the caller's renewals move its deadline; at the deadline it is
    /// released and reported lost. (The keeper still renews a shared
    /// renewal unit it is part of, for the unit's other leases.)
    Caller,
}

impl RenewedBy {
    /// [`RenewedBy::Keeper`] when `auto_renew`, else [`RenewedBy::Caller`].
    pub(crate) fn choose(auto_renew: bool) -> Self {
        if auto_renew {
            RenewedBy::Keeper
        } else {
            RenewedBy::Caller
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Held,
    Releasing,
    Released,
    /// The reason is in [`Rare::reason`].
    Lost,
    Abandoned,
}

/// What only some leases need, allocated on first use: lost callbacks, the
/// wake-up of [`LeaseCore::lost`] waiters, the reason of a loss.
#[derive(Default)]
struct Rare {
    callbacks: Vec<LostCallback>,
    /// Woken (all waiters) when the lease ends; made by the first waiter.
    ended: Option<Arc<Notify>>,
    /// Why the lease was lost, once it was.
    reason: String,
    /// A loss reported while a release was under way (a renewal in flight
    /// that met the release's own delete, usually): it takes effect only if
    /// the release fails ([`LeaseCore::finish_release`]).
    loss_during_release: Option<String>,
}

struct State {
    status: Status,
    renewal: RenewedBy,
    /// Local deadline (monotonic, safety margin already taken off).
    deadline: Instant,
    /// The loss watcher's waker, woken when the lease stops being Held so
    /// that the watcher ends.
    watcher: Option<Waker>,
    rare: Option<Box<Rare>>,
}

impl State {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    /// Held or being released: the keeper still renews it.
    fn is_kept(&self) -> bool {
        matches!(self.status, Status::Held | Status::Releasing)
    }

    /// Why the lease was lost (empty unless it was).
    fn reason(&self) -> &str {
        self.rare.as_ref().map_or("", |rare| &rare.reason)
    }

    /// Wakes whatever waits for the lease to end (its watcher, `lost()`
    /// callers) and hands back the callbacks, which the caller fires or drops.
    fn ended(&mut self) -> Vec<LostCallback> {
        if let Some(watcher) = self.watcher.take() {
            watcher.wake();
        }
        let Some(rare) = &mut self.rare else {
            return Vec::new();
        };
        if let Some(ended) = rare.ended.take() {
            ended.notify_waiters();
        }
        let callbacks = std::mem::take(&mut rare.callbacks);
        if self.status != Status::Lost {
            self.rare = None;
        }
        callbacks
    }
}

/// The state of one lease, shared by its handle and the keeper. Kept small:
/// a client may hold many thousands (what few leases use is boxed in `Rare`).
pub(crate) struct LeaseCore {
    pub(crate) id: u64,
    pub(crate) grant: Arc<Grant>,
    /// The holder value; leases with the client's default value share one.
    pub(crate) value: Arc<String>,
    /// When the lease was granted (for hold-time metrics).
    pub(crate) acquired_at: Instant,
    /// The keeper's bookkeeping for this lease (its place in the keeper's
    /// timeline); only the keeper reads or writes it, under its own lock.
    pub(crate) slot: AtomicU64,
    state: Mutex<State>,
}

impl LeaseCore {
    pub(crate) fn new(
        id: u64,
        grant: Grant,
        value: impl Into<Arc<String>>,
        deadline: Instant,
        renewal: RenewedBy,
    ) -> Self {
        LeaseCore {
            id,
            grant: Arc::new(grant),
            value: value.into(),
            acquired_at: Instant::now(),
            slot: AtomicU64::new(0),
            state: Mutex::new(State {
                status: Status::Held,
                renewal,
                deadline,
                watcher: None,
                rare: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Held or being released: the keeper still renews it.
    pub(crate) fn is_kept(&self) -> bool {
        self.state().is_kept()
    }

    pub(crate) fn is_held(&self) -> bool {
        let state = self.state();
        state.status == Status::Held && state.deadline > Instant::now()
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.state().deadline
    }

    /// For the loss watcher: `true` while the lease is Held, and then `waker`
    /// is woken once it no longer is (a release starts, lost, abandoned).
    pub(crate) fn watch_end(&self, waker: &Waker) -> bool {
        let mut state = self.state();
        if state.status != Status::Held {
            return false;
        }
        match &mut state.watcher {
            Some(known) if known.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        true
    }

    /// A renewal sent before `deadline`'s basis succeeded; `on_request`
    /// when the caller asked for it. The keeper's own renewals do not move
    /// the deadline of a lease the caller renews ([`RenewedBy::Caller`]).
    pub(crate) fn renewed(&self, deadline: Instant, on_request: bool) {
        let mut state = self.state();
        let counts = on_request || state.renewal == RenewedBy::Keeper;
        if counts && state.is_kept() && deadline > state.deadline {
            state.deadline = deadline;
        }
    }

    /// Who renews the lease.
    pub(crate) fn renewal(&self) -> RenewedBy {
        self.state().renewal
    }

    /// Marks the lease lost unless it already ended; fires the callbacks.
    /// Returns true when this call made it lost. While a release is under
    /// way the loss is only noted: a release that succeeds ends the lease
    /// Released (no callbacks), one that fails hands the loss back from
    /// [`finish_release`](Self::finish_release).
    pub(crate) fn lose(&self, reason: &str) -> bool {
        let callbacks = {
            let mut state = self.state();
            if state.status == Status::Releasing {
                state
                    .rare()
                    .loss_during_release
                    .get_or_insert_with(|| reason.to_string());
                return false;
            }
            if !state.is_kept() {
                return false;
            }
            state.status = Status::Lost;
            state.rare().reason = reason.to_string();
            state.ended()
        };
        fire_callbacks(callbacks, self.lost_event(reason));
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
        match state.status {
            Status::Held | Status::Releasing => state.rare().callbacks.push(callback),
            Status::Lost => {
                let event = self.lost_event(state.reason());
                drop(state);
                fire_callbacks(vec![callback], event);
            }
            Status::Released | Status::Abandoned => {}
        }
    }

    /// Held → Releasing; the error says why a release cannot start.
    pub(crate) fn begin_release(&self) -> Result<()> {
        let mut state = self.state();
        match state.status {
            Status::Held => {
                state.status = Status::Releasing;
                // The watcher stops: a release is under way.
                if let Some(watcher) = state.watcher.take() {
                    watcher.wake();
                }
                Ok(())
            }
            Status::Lost => Err(Error::Lost {
                name: self.grant.name.clone(),
                reason: state.reason().to_string(),
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
    /// the caller may retry, and the loss reported during the release, if
    /// any, is returned for the caller to declare.
    pub(crate) fn finish_release(&self, released: bool) -> Option<String> {
        let mut state = self.state();
        if state.status != Status::Releasing {
            return None;
        }
        let deferred = state
            .rare
            .as_mut()
            .and_then(|rare| rare.loss_during_release.take());
        if released {
            state.status = Status::Released;
            // Callbacks of a released lease never run.
            drop(state.ended());
            None
        } else {
            state.status = Status::Held;
            deferred
        }
    }

    /// Held → Abandoned: stop renewing without releasing.
    pub(crate) fn abandon(&self) {
        let mut state = self.state();
        if state.status == Status::Held {
            state.status = Status::Abandoned;
            drop(state.ended());
        }
    }

    /// The error an operation on a lease that is not Held should return.
    pub(crate) fn ensure_held(&self) -> Result<()> {
        let state = self.state();
        match state.status {
            Status::Held | Status::Releasing => Ok(()),
            Status::Lost => Err(Error::Lost {
                name: self.grant.name.clone(),
                reason: state.reason().to_string(),
            }),
            _ => Err(Error::NotHeld {
                name: self.grant.name.clone(),
                reason: "the lease was released or abandoned".into(),
            }),
        }
    }

    pub(crate) fn loss_reason(&self) -> Option<String> {
        let state = self.state();
        (state.status == Status::Lost).then(|| state.reason().to_string())
    }

    /// Resolves with the loss event, or `None` once the lease ended otherwise.
    pub(crate) async fn lost(&self) -> Option<LostEvent> {
        loop {
            let ended = {
                let mut state = self.state();
                if let Some(end) = self.end_of(&state) {
                    return end;
                }
                state.rare().ended.get_or_insert_default().clone()
            };
            let notified = ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // An end between the look above and `enable` is seen here; one
            // after it wakes `notified`.
            let end = self.end_of(&self.state());
            match end {
                Some(end) => return end,
                None => notified.await,
            }
        }
    }

    /// `None` while the lease runs; then the loss event, if it was lost.
    fn end_of(&self, state: &State) -> Option<Option<LostEvent>> {
        match state.status {
            Status::Held | Status::Releasing => None,
            Status::Lost => Some(Some(self.lost_event(state.reason()))),
            Status::Released | Status::Abandoned => Some(None),
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
            Err(_) => {
                if let Some(reason) = self.core.finish_release(false) {
                    self.client.keeper.lose(&self.core, &reason);
                }
            }
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
    /// If every attempt fails (the backend unreachable), the lease is
    /// abandoned: no longer renewed, its TTL frees it, rather than being
    /// kept alive by a keeper nobody will ask to release it again.
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
            if self.core.is_kept() {
                self.abandon();
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

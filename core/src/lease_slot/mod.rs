//! [`LeaseSlot`]: a lock handle that holds at most one lease at a time — the
//! state machine every binding's lock object is (C's `polylock_lock`,
//! Python's and Node's `Lock`), written once here.
//!
//! - **Acquire** starts only when the slot is idle (no acquisition under way,
//!   no lease it still keeps); otherwise it is [`Error::Usage`]. The
//!   acquisition runs as one task on polylock's runtime and reports to a
//!   completion callback from that task (no extra task or thread hop), so a
//!   binding can settle a Promise or an asyncio future, or wake a blocked C
//!   thread, straight from it. A drop guard in the task returns the slot to
//!   idle whatever ends the task (a panic included) and still calls the
//!   callback.
//! - **Cancel** ends a pending acquisition: a parked wait stops at once; an
//!   attempt already sent to the backend is never cut in the middle, and a
//!   grant it brings back after the cancel is released, never kept. The slot
//!   is idle again as soon as `cancel` returns; the cancelled acquisition
//!   reports [`Error::Cancelled`].
//! - **Release** of the slot's lease: a transient failure (the backend
//!   unreachable) leaves the lease held and kept in the slot, so the release
//!   can be retried; a release after the lease was lost reports
//!   [`Error::Lost`] and frees the slot. No lock is held across a backend call.
//!   A binding's lease object releases or renews its own lease (an older one
//!   included) with [`LeaseSlot::release_lease`] / [`LeaseSlot::renew_lease`],
//!   on the task it already runs on polylock's runtime.
//! - **Lost listeners** registered on the slot hear of the loss of its
//!   current lease and of every later one, once per lease, on the notifier
//!   thread (at once if the current lease is lost already); they can be
//!   removed. A lease refers to the slot weakly, so neither a listener nor a
//!   kept lease keeps the slot, its lock or its client alive.
//! - **Close** (and dropping the last handle) cancels a pending acquisition,
//!   drops the listeners and releases a kept lease.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::oneshot;

use crate::client::{acquire_lease, Lock};
use crate::error::{Error, Result};
use crate::lease::{Lease, LeaseRef, LostEvent, RenewedBy};
use crate::runtime;
use crate::waiting::Wait;

/// A lost listener: told of every lost lease of its slot.
pub type LostListener = Arc<dyn Fn(&LostEvent) + Send + Sync + 'static>;

/// Names a listener registered with [`LeaseSlot::on_lost`], for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Hooks of one acquisition, for bindings whose callers must know when a
/// wait is parked (tests that cancel or release exactly then).
#[derive(Default)]
pub struct AcquireHooks {
    /// Runs once, on the runtime, when the acquisition starts waiting
    /// because the lock was busy. Must not block.
    pub wait_started: Option<Box<dyn FnOnce() + Send + 'static>>,
}

/// The slot's lease and whether its loss was reported to the listeners.
struct Current {
    lease: LeaseRef,
    /// Set once the listeners were told of this lease's loss.
    reported: Arc<AtomicBool>,
}

struct State {
    /// The acquisition under way: its number, and the sender whose drop
    /// tells it that its caller went away.
    acquiring: Option<(u64, oneshot::Sender<()>)>,
    /// The current lease, or the last one if it was lost.
    current: Option<Current>,
    listeners: Vec<(ListenerId, LostListener)>,
    next_id: u64,
    closed: bool,
}

struct Inner {
    lock: Lock,
    /// Whether the next acquisitions' leases are renewed by polylock
    /// (from the lock's options; [`LeaseSlot::set_auto_renew`]).
    auto_renew: AtomicBool,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = state.current.take() {
            current.lease.release_in_background();
        }
    }
}

/// A lock handle holding at most one lease at a time; see the module docs.
/// Cheap to clone: clones share the slot.
#[derive(Clone)]
pub struct LeaseSlot {
    inner: Arc<Inner>,
}

impl LeaseSlot {
    /// An idle slot for `lock`.
    pub fn new(lock: Lock) -> Self {
        LeaseSlot {
            inner: Arc::new(Inner {
                auto_renew: AtomicBool::new(lock.auto_renew()),
                lock,
                state: Mutex::new(State {
                    acquiring: None,
                    current: None,
                    listeners: Vec::new(),
                    next_id: 1,
                    closed: false,
                }),
            }),
        }
    }

    /// The lock this slot acquires.
    pub fn lock(&self) -> &Lock {
        &self.inner.lock
    }

    /// Whether polylock renews the leases of the next acquisitions (as
    /// [`LockOptions::auto_renew`](crate::LockOptions::auto_renew); the
    /// lock's option until changed). A lease already held keeps its way.
    pub fn set_auto_renew(&self, on: bool) {
        self.inner.auto_renew.store(on, Ordering::Relaxed);
    }

    /// Whether the next acquisitions' leases are renewed by polylock.
    pub fn auto_renew(&self) -> bool {
        self.inner.auto_renew.load(Ordering::Relaxed)
    }

    /// Starts acquiring as `wait` allows; `done` is called exactly once, on
    /// polylock's runtime, with the lease (a handle on the slot's lease:
    /// dropping it does not release), `Ok(None)` when [`Wait::No`] found the
    /// lock busy, or the error ([`Error::Cancelled`] after [`cancel`](Self::cancel)).
    /// `done` must not block; a panic in it is caught.
    ///
    /// Fails at once, without calling `done`, with [`Error::Usage`] unless
    /// the slot is idle.
    pub fn start_acquire(
        &self,
        wait: Wait,
        hooks: AcquireHooks,
        done: impl FnOnce(Result<Option<Lease>>) + Send + 'static,
    ) -> Result<()> {
        runtime::spawn(self.acquisition(wait, hooks, done)?);
        Ok(())
    }

    /// An acquisition as a future that calls `done` (see
    /// [`start_acquire`](Self::start_acquire)); the slot is already marked
    /// acquiring. Runs on the runtime, or on a blocked caller's thread
    /// inside the runtime's context.
    fn acquisition(
        &self,
        wait: Wait,
        hooks: AcquireHooks,
        done: impl FnOnce(Result<Option<Lease>>) + Send + 'static,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let client = self.inner.lock.client.inner.clone();
        client.check_process()?;
        let (attempt, caller_gone) = {
            let mut state = self.inner.state();
            self.ensure_idle(&state)?;
            // A lease still here is lost or released: nothing to keep.
            state.current = None;
            let attempt = state.next_id;
            state.next_id += 1;
            let (here, gone) = oneshot::channel();
            state.acquiring = Some((attempt, here));
            (attempt, gone)
        };
        let mut finish = Finish {
            slot: Arc::downgrade(&self.inner),
            attempt,
            name: self.inner.lock.request.name.clone(),
            done: Some(Box::new(done)),
        };
        let request = self.inner.lock.request.clone();
        let renewal = RenewedBy::choose(self.auto_renew());
        Ok(async move {
            let outcome = acquire_lease(
                client,
                &request,
                wait,
                renewal,
                caller_gone,
                hooks.wait_started,
            )
            .await;
            finish.complete(outcome);
        })
    }

    fn ensure_idle(&self, state: &State) -> Result<()> {
        let name = self.inner.lock.name();
        if state.closed {
            return Err(Error::Usage(format!(
                "the lock handle for {name:?} was closed"
            )));
        }
        let keeps = state
            .current
            .as_ref()
            .is_some_and(|current| current.lease.core.is_kept());
        if state.acquiring.is_some() || keeps {
            return Err(Error::Usage(format!(
                "this lock handle for {name:?} already holds or is acquiring a lease; release \
                 it, or use another handle for another slot"
            )));
        }
        Ok(())
    }

    /// Acquires as `wait` allows and waits for the outcome (see
    /// [`start_acquire`](Self::start_acquire)).
    pub async fn acquire(&self, wait: Wait) -> Result<Option<Lease>> {
        let (tx, rx) = oneshot::channel();
        self.start_acquire(wait, AcquireHooks::default(), move |outcome| {
            let _ = tx.send(outcome);
        })?;
        rx.await
            .map_err(|_| Error::Usage("the polylock runtime stopped".into()))?
    }

    /// Acquires as `wait` allows, blocking the calling thread (not inside an
    /// async runtime: that is [`Error::Usage`]). Another thread may
    /// [`cancel`](Self::cancel) it.
    pub fn acquire_blocking(&self, wait: Wait) -> Result<Option<Lease>> {
        self.acquire_blocking_with(wait, AcquireHooks::default())
    }

    /// [`acquire_blocking`](Self::acquire_blocking) with `hooks` (a
    /// wait-started hook tells another thread when the wait is parked, so it
    /// can [`cancel`](Self::cancel) it then). The calling thread waits for
    /// the acquisition itself (polled on this thread in the runtime's
    /// context), so an uncontended call crosses no thread.
    pub fn acquire_blocking_with(&self, wait: Wait, hooks: AcquireHooks) -> Result<Option<Lease>> {
        runtime::ensure_blocking_allowed()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let acquisition = self.acquisition(wait, hooks, move |outcome| {
            let _ = tx.send(outcome);
        })?;
        // A panic inside has told `done` already (the drop guard).
        let _ = run_here(acquisition);
        rx.recv()
            .map_err(|_| Error::Usage("the polylock runtime stopped".into()))?
    }

    /// Cancels the pending acquisition, if any; true if there was one. The
    /// slot is idle when this returns; the acquisition's `done` gets
    /// [`Error::Cancelled`] once its attempt in flight (if any) ended, and a
    /// lease that attempt brought back is released.
    pub fn cancel(&self) -> bool {
        // Dropping the sender is the signal.
        self.inner.state().acquiring.take().is_some()
    }

    /// True while an acquisition is under way.
    pub fn is_acquiring(&self) -> bool {
        self.inner.state().acquiring.is_some()
    }

    /// The slot's lease: the current one, or the last one if it was lost;
    /// `None` when it holds none (never acquired, or released). A handle:
    /// dropping it does not release the lease.
    pub fn lease(&self) -> Option<Lease> {
        let state = self.inner.state();
        state
            .current
            .as_ref()
            .map(|current| Lease::view(current.lease.clone()))
    }

    /// The lease a release or renewal acts on, or why there is none.
    fn kept_lease(&self) -> Result<LeaseRef> {
        let mut state = self.inner.state();
        let Some(current) = state.current.as_ref() else {
            return Err(Error::NotHeld {
                name: self.inner.lock.name().to_string(),
                reason: "this lock handle holds no lease (never acquired, or released)".into(),
            });
        };
        let lease = current.lease.clone();
        if let Err(error) = lease.core.ensure_held() {
            // Lost or ended: the slot is free again.
            state.current = None;
            return Err(error);
        }
        Ok(lease)
    }

    /// Releases the slot's lease. [`Error::NotHeld`] without one,
    /// [`Error::Lost`] if it was lost (the slot is free then); on a
    /// transient failure the lease stays held and in the slot: retry.
    pub async fn release(&self) -> Result<()> {
        let lease = self.kept_lease()?;
        self.release_ref(lease).await
    }

    /// Releases `lease`; frees the slot if it was the slot's lease and the
    /// release was not a transient failure.
    async fn release_ref(&self, lease: LeaseRef) -> Result<()> {
        let result = lease.clone().release().await;
        self.after_release(&lease, &result);
        result
    }

    /// Releases `lease`, a handle this slot gave out (from an acquisition or
    /// [`lease`](Self::lease)), for a binding's lease object: when it is the
    /// slot's current lease this is [`release`](Self::release) (freed, or
    /// kept for a retry after a transient failure); an older lease reports
    /// [`Error::NotHeld`] (released) or [`Error::Lost`], leaving the slot's
    /// current one alone.
    ///
    /// Runs on the calling task, with no hop of its own (unlike
    /// [`Lease::release`]): await it on polylock's runtime, inside
    /// [`crate::spawn`].
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.release_ref(lease.inner.clone()).await
    }

    /// Frees the slot after a release of `lease` that did not fail
    /// transiently, if `lease` is still its current one.
    fn after_release(&self, lease: &LeaseRef, result: &Result<()>) {
        if matches!(result, Err(error) if error.is_transient()) {
            return;
        }
        let mut state = self.inner.state();
        let same = state
            .current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(&current.lease.core, &lease.core));
        if same && !lease.core.is_kept() {
            state.current = None;
        }
    }

    /// Renews `lease` (a handle this slot gave out) now, on the calling
    /// task with no hop of its own (unlike [`Lease::renew`]): await it on
    /// polylock's runtime, inside [`crate::spawn`].
    pub async fn renew_lease(&self, lease: &Lease) -> Result<()> {
        lease.inner.clone().renew().await
    }

    /// [`release`](Self::release), blocking the calling thread.
    pub fn release_blocking(&self) -> Result<()> {
        runtime::ensure_blocking_allowed()?;
        run_here(self.release())?
    }

    /// Renews the slot's lease now (the keeper renews it anyway).
    pub async fn renew(&self) -> Result<()> {
        self.kept_lease()?.renew().await
    }

    /// [`renew`](Self::renew), blocking the calling thread.
    pub fn renew_blocking(&self) -> Result<()> {
        runtime::ensure_blocking_allowed()?;
        run_here(self.renew())?
    }

    /// Registers `listener` for the loss of the current lease and of every
    /// later one (once per lease, on the notifier thread; at once if the
    /// current lease is lost already). A panic in it is caught and logged.
    pub fn on_lost(&self, listener: LostListener) -> ListenerId {
        let mut state = self.inner.state();
        let id = ListenerId(state.next_id);
        state.next_id += 1;
        state.listeners.push((id, listener.clone()));
        if let Some(current) = &state.current {
            // A loss already reported to the others is reported to this
            // one alone; one not reported yet will include it.
            if current.reported.load(Ordering::SeqCst) {
                if let Some(event) = lost_event(&current.lease) {
                    tell(vec![listener], event);
                }
            }
        }
        id
    }

    /// Removes a listener; true if it was registered. A call of it in
    /// progress on the notifier thread finishes.
    pub fn remove_lost_listener(&self, id: ListenerId) -> bool {
        let mut state = self.inner.state();
        let before = state.listeners.len();
        state.listeners.retain(|(each, _)| *each != id);
        state.listeners.len() != before
    }

    /// Closes the slot: cancels a pending acquisition, drops the listeners
    /// and releases a kept lease in the background. Later acquisitions are
    /// [`Error::Usage`].
    pub fn close(&self) {
        if let Some(lease) = self.shut() {
            lease.release_in_background();
        }
    }

    /// [`close`](Self::close), releasing a kept lease before returning (a
    /// transient failure is retried in the background); the release's
    /// error, if any.
    pub fn close_blocking(&self) -> Result<()> {
        let Some(lease) = self.shut() else {
            return Ok(());
        };
        if !lease.core.is_kept() {
            return Ok(());
        }
        match runtime::block_on(lease.clone().release()) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if error.is_transient() => {
                lease.release_in_background();
                Err(error)
            }
            Ok(Err(error)) => Err(error),
            Err(error) => {
                lease.release_in_background();
                Err(error)
            }
        }
    }

    fn shut(&self) -> Option<LeaseRef> {
        let mut state = self.inner.state();
        state.closed = true;
        state.acquiring = None;
        let listeners = std::mem::take(&mut state.listeners);
        let current = state.current.take();
        drop(state);
        drop(listeners);
        current.map(|current| current.lease)
    }
}

impl fmt::Debug for LeaseSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("LeaseSlot")
            .field("name", &self.inner.lock.name())
            .field("acquiring", &state.acquiring.is_some())
            .field(
                "held",
                &state
                    .current
                    .as_ref()
                    .is_some_and(|current| current.lease.core.is_held()),
            )
            .finish()
    }
}

/// Polls `fut` on the calling thread (outside any runtime) in the runtime's
/// context, its I/O and timers driven by the runtime's workers: an
/// uncontended call crosses no thread. A panic inside is an error here.
fn run_here<F: std::future::Future>(fut: F) -> Result<F::Output> {
    catch_unwind(AssertUnwindSafe(|| runtime::handle().block_on(fut))).map_err(|_| {
        Error::Backend("a polylock call panicked (a bug; the panic was caught)".into())
    })
}

type Done = Box<dyn FnOnce(Result<Option<Lease>>) + Send + 'static>;

/// The end of one acquisition: stores the lease, frees the slot, calls
/// `done`. Dropped without [`complete`](Finish::complete) (a panic, a
/// runtime going away), it still frees the slot and calls `done`.
struct Finish {
    slot: Weak<Inner>,
    attempt: u64,
    name: String,
    done: Option<Done>,
}

impl Finish {
    fn complete(&mut self, outcome: Result<Option<LeaseRef>>) {
        let reply = self.settle(outcome);
        if let Some(done) = self.done.take() {
            if catch_unwind(AssertUnwindSafe(|| done(reply))).is_err() {
                tracing::error!(name = %self.name, "an acquisition's completion callback panicked; ignored");
            }
        }
    }

    /// Applies the outcome to the slot; what `done` is told.
    fn settle(&self, outcome: Result<Option<LeaseRef>>) -> Result<Option<Lease>> {
        let cancelled = || Error::Cancelled {
            name: self.name.clone(),
        };
        let Some(slot) = self.slot.upgrade() else {
            // The slot is gone: nobody keeps a late lease.
            if let Ok(Some(lease)) = outcome {
                lease.release_in_background();
            }
            return Err(cancelled());
        };
        let mut state = slot.state();
        let ours = matches!(&state.acquiring, Some((attempt, _)) if *attempt == self.attempt);
        if !ours {
            // Cancelled (or closed) meanwhile.
            drop(state);
            if let Ok(Some(lease)) = outcome {
                lease.release_in_background();
            }
            return Err(cancelled());
        }
        state.acquiring = None;
        let lease = match outcome {
            Ok(Some(lease)) => lease,
            Ok(None) => return Ok(None),
            Err(error) => return Err(error),
        };
        let reported = Arc::new(AtomicBool::new(false));
        state.current = Some(Current {
            lease: lease.clone(),
            reported: reported.clone(),
        });
        drop(state);
        // Weak: the lease (kept by the client's keeper) must not keep the
        // slot, its listeners or its client alive.
        let weak = Arc::downgrade(&slot);
        lease
            .core
            .on_lost(Box::new(move |event| report_loss(&weak, &reported, event)));
        Ok(Some(Lease::view(lease)))
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if self.done.is_some() {
            let error = Error::Backend(format!(
                "the acquisition of lock {:?} ended unexpectedly (a panic inside polylock)",
                self.name
            ));
            self.complete(Err(error));
        }
    }
}

/// Runs on the notifier thread when a slot's lease is lost: tells the
/// slot's listeners of now, once.
fn report_loss(slot: &Weak<Inner>, reported: &AtomicBool, event: &LostEvent) {
    // The slot is let go before the listeners run: when the other handles
    // are gone meanwhile, it (and its client) is freed here, not kept alive
    // by a running listener.
    let listeners: Vec<LostListener> = {
        let Some(slot) = slot.upgrade() else { return };
        let state = slot.state();
        if reported.swap(true, Ordering::SeqCst) {
            return;
        }
        state.listeners.iter().map(|(_, l)| l.clone()).collect()
    };
    call_each(&listeners, event);
}

/// The loss event of a lost lease.
fn lost_event(lease: &LeaseRef) -> Option<LostEvent> {
    let reason = lease.core.loss_reason()?;
    let grant = &lease.core.grant;
    Some(LostEvent {
        name: grant.name.clone(),
        holder: grant.holder.clone(),
        fencing_token: grant.fencing_token,
        reason,
    })
}

/// Tells `listeners` of `event` on the notifier thread.
fn tell(listeners: Vec<LostListener>, event: LostEvent) {
    runtime::notify(Box::new(move || call_each(&listeners, &event)));
}

fn call_each(listeners: &[LostListener], event: &LostEvent) {
    for listener in listeners {
        if catch_unwind(AssertUnwindSafe(|| listener(event))).is_err() {
            tracing::error!(name = %event.name, "a lost listener panicked; ignored");
        }
    }
}

#[cfg(test)]
mod tests;

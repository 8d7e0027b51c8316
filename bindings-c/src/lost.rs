//! Lost-lease callbacks: one registration per lock handle, run on
//! polylock's notifier thread, never after the handle is freed, with its
//! `user_data_free` run exactly once.
//!
//! The core's `LeaseSlot` reports each lost lease once to its listeners;
//! a lock handle adds one listener, the first time a callback is
//! registered, that calls [`CallbackSlot::fire`]. Replacing or clearing the
//! registration changes only what this slot holds, never the listener.

use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use polylock_core::LostEvent;

/// What a lost callback is told. Every pointer is valid only during the
/// callback; copy what you keep.
#[repr(C)]
pub struct polylock_lost_event {
    /// The lock's name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// The backend's id of the lost holder (NUL-terminated UTF-8).
    pub holder: *const c_char,
    /// Whether `fencing_token` is meaningful.
    pub has_fencing_token: bool,
    /// The lost lease's fencing token.
    pub fencing_token: u64,
    /// Why the lease was lost (NUL-terminated UTF-8).
    pub reason: *const c_char,
}

/// A lost callback: `user_data` as registered, and the event.
pub type polylock_lost_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const polylock_lost_event)>;

/// Frees a registration's `user_data`.
pub type polylock_user_data_free = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// One registration.
struct Registration {
    callback: polylock_lost_callback,
    user_data: *mut c_void,
    user_data_free: polylock_user_data_free,
}

// SAFETY: the header's contract makes `user_data` usable from polylock's
// notifier thread; polylock never touches what it points to.
unsafe impl Send for Registration {}

impl Registration {
    fn dispose(self) {
        if let Some(free) = self.user_data_free {
            // SAFETY: called exactly once per registration, per the contract.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe { free(self.user_data) }));
        }
    }
}

#[derive(Default)]
struct SlotState {
    registration: Option<Registration>,
    /// The thread running the callback right now, if any.
    running: Option<ThreadId>,
    /// Registrations replaced or freed while their callback ran: disposed
    /// when it returns.
    retired: Vec<Registration>,
    freed: bool,
}

/// A lock handle's callback registration.
#[derive(Default)]
pub(crate) struct CallbackSlot {
    state: Mutex<SlotState>,
    idle: Condvar,
}

impl CallbackSlot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no callback runs, unless this thread is the one running
    /// it (a callback that re-registers or frees its own handle).
    fn settled(&self) -> MutexGuard<'_, SlotState> {
        let mut state = self.state();
        while state.running.is_some_and(|t| t != thread::current().id()) {
            state = self.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state
    }

    /// Replaces the registration (`None` clears it); the old one's
    /// `user_data_free` runs once no callback is using it.
    pub(crate) fn register(
        &self,
        callback: polylock_lost_callback,
        user_data: *mut c_void,
        user_data_free: polylock_user_data_free,
    ) {
        let registration = Registration {
            callback,
            user_data,
            user_data_free,
        };
        let registration = match registration.callback {
            Some(_) => Some(registration),
            None => {
                registration.dispose();
                None
            }
        };
        let mut state = self.settled();
        if state.freed {
            drop(state);
            if let Some(registration) = registration {
                registration.dispose();
            }
            return;
        }
        let old = std::mem::replace(&mut state.registration, registration);
        self.retire(state, old);
    }

    /// The handle is being freed: no callback runs after this returns (or,
    /// when called from the callback itself, after that callback returns).
    pub(crate) fn close(&self) {
        let mut state = self.settled();
        state.freed = true;
        let old = state.registration.take();
        self.retire(state, old);
    }

    fn retire(&self, mut state: MutexGuard<'_, SlotState>, old: Option<Registration>) {
        let Some(old) = old else { return };
        if state.running.is_some() {
            // Our own callback is on the stack: dispose after it returns.
            state.retired.push(old);
        } else {
            drop(state);
            old.dispose();
        }
    }

    /// Runs the registered callback for `event` (on the notifier thread);
    /// false if there was none to run.
    pub(crate) fn fire(&self, event: &LostEvent) -> bool {
        let mut state = self.settled();
        let Some(registration) = state.registration.as_ref() else {
            return false;
        };
        if state.freed {
            return false;
        }
        let (Some(callback), user_data) = (registration.callback, registration.user_data) else {
            return false;
        };
        state.running = Some(thread::current().id());
        drop(state);

        let text = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let (name, holder, reason) = (text(&event.name), text(&event.holder), text(&event.reason));
        let c_event = polylock_lost_event {
            name: name.as_ptr(),
            holder: holder.as_ptr(),
            has_fencing_token: event.fencing_token.is_some(),
            fencing_token: event.fencing_token.unwrap_or(0),
            reason: reason.as_ptr(),
        };
        // SAFETY: the callback and user_data were registered together and
        // are not disposed while `running` is set.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
            callback(user_data, &c_event)
        }));

        let mut state = self.state();
        state.running = None;
        let retired = std::mem::take(&mut state.retired);
        drop(state);
        self.idle.notify_all();
        for registration in retired {
            registration.dispose();
        }
        true
    }
}

impl Drop for CallbackSlot {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let leftovers: Vec<_> = state
            .registration
            .take()
            .into_iter()
            .chain(state.retired.drain(..))
            .collect();
        for registration in leftovers {
            registration.dispose();
        }
    }
}

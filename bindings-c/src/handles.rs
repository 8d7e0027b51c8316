//! Live-handle registries: a C pointer is only ever looked up here, never
//! dereferenced, so NULL, freed (double free) and foreign pointers are
//! reported as `POLYLOCK_INVALID_HANDLE` instead of undefined behaviour.
//!
//! A handle's pointer is the address of its `Arc`'s contents. Calls clone
//! the `Arc` out of the registry, so freeing a handle while another thread
//! is inside a call on it is safe too: the object lives until that call ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::call::Failure;
use crate::status::polylock_status;

/// The live handles of one type.
pub(crate) struct Registry<T> {
    live: Mutex<BTreeMap<usize, Arc<T>>>,
    kind: &'static str,
}

impl<T> Registry<T> {
    /// An empty registry for handles called `kind` in messages.
    pub(crate) const fn new(kind: &'static str) -> Self {
        Registry {
            live: Mutex::new(BTreeMap::new()),
            kind,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<T>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `value`; returns the pointer C callers hold.
    pub(crate) fn insert<P>(&self, value: T) -> *mut P {
        let value = Arc::new(value);
        let address = Arc::as_ptr(&value) as usize;
        self.live().insert(address, value);
        address as *mut P
    }

    /// The live handle at `ptr`.
    pub(crate) fn get<P>(&self, ptr: *const P) -> Result<Arc<T>, Failure> {
        self.live()
            .get(&(ptr as usize))
            .cloned()
            .ok_or_else(|| self.invalid(ptr))
    }

    /// Unregisters the handle at `ptr`, returning it.
    pub(crate) fn remove<P>(&self, ptr: *const P) -> Result<Arc<T>, Failure> {
        self.live()
            .remove(&(ptr as usize))
            .ok_or_else(|| self.invalid(ptr))
    }

    fn invalid<P>(&self, ptr: *const P) -> Failure {
        let why = if ptr.is_null() {
            "is NULL"
        } else {
            "is not a live handle (freed already, or never created)"
        };
        Failure::new(
            polylock_status::POLYLOCK_INVALID_HANDLE,
            format!("the {} {why}", self.kind),
        )
    }
}

//! Live-handle registries: a C pointer is only ever looked up here, never
//! dereferenced, so NULL, freed (double free) and foreign pointers are
//! reported as `POLYLOCK_INVALID_HANDLE` instead of undefined behaviour.
//!
//! A handle's pointer is not an address: it is a 64-bit id, `TAG | n`, with
//! `n` taken from one process-wide counter that only goes up. So an id is
//! never handed out twice (a freed handle stays invalid however many are
//! made after it), and ids are unique across handle types (a client passed
//! where a lock is expected is not found in the lock registry). `TAG` makes
//! the value a non-canonical address on x86-64 and AArch64: a caller that
//! dereferences a handle faults at once instead of reading memory, and
//! garbage collectors that scan it (Go's) never take it for a heap pointer.
//!
//! Calls clone the `Arc` out of the registry, so freeing a handle while
//! another thread is inside a call on it is safe too: the object lives until
//! that call ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::call::Failure;
use crate::status::polylock_status;

/// The high bits every handle carries (none on targets narrower than 64 bits).
const TAG: u64 = if usize::BITS >= 64 { 0xA5 << 56 } else { 0 };

/// The bits of a handle's sequence number.
const SEQUENCE_MASK: u64 = if usize::BITS >= 64 {
    (1 << 56) - 1
} else {
    usize::MAX as u64
};

/// The next handle's sequence number, shared by every registry.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh handle id, or `None` once the sequence is used up (2^56 handles
/// on 64-bit targets: never in practice; ids are never reused instead).
fn next_id() -> Option<u64> {
    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < SEQUENCE_MASK).then_some(n + 1)
    })
    .ok()
    .map(|n| TAG | n)
}

/// The live handles of one type.
pub(crate) struct Registry<T> {
    live: Mutex<BTreeMap<u64, Arc<T>>>,
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

    fn live(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `value`; returns the pointer C callers hold (a fresh id).
    pub(crate) fn insert<P>(&self, value: T) -> Result<*mut P, Failure> {
        let id = next_id().ok_or_else(|| {
            Failure::new(
                polylock_status::POLYLOCK_USAGE,
                "this process has used up polylock's handle ids",
            )
        })?;
        self.live().insert(id, Arc::new(value));
        Ok(id as usize as *mut P)
    }

    /// The live handle `ptr`.
    pub(crate) fn get<P>(&self, ptr: *const P) -> Result<Arc<T>, Failure> {
        let found = self.live().get(&(ptr as usize as u64)).cloned();
        found.ok_or_else(|| self.invalid(ptr))
    }

    /// Unregisters the handle `ptr`, returning it.
    pub(crate) fn remove<P>(&self, ptr: *const P) -> Result<Arc<T>, Failure> {
        let found = self.live().remove(&(ptr as usize as u64));
        found.ok_or_else(|| self.invalid(ptr))
    }

    fn invalid<P>(&self, ptr: *const P) -> Failure {
        let value = ptr as usize as u64;
        let why = if ptr.is_null() {
            "is NULL"
        } else if value & !SEQUENCE_MASK == TAG
            && (value & SEQUENCE_MASK) < NEXT.load(Ordering::Relaxed)
        {
            "is not a live handle (freed already, or a handle of another kind)"
        } else {
            "is not a live handle (never created by polylock)"
        };
        Failure::new(
            polylock_status::POLYLOCK_INVALID_HANDLE,
            format!("the {} {why}", self.kind),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_unique_across_registries() {
        let locks: Registry<u32> = Registry::new("lock handle");
        let clients: Registry<u32> = Registry::new("client handle");
        let first: *mut () = locks.insert(1).ok().unwrap();
        locks.remove(first).ok().unwrap();
        let client: *mut () = clients.insert(2).ok().unwrap();
        for i in 0..1_000 {
            let again: *mut () = locks.insert(i).ok().unwrap();
            assert_ne!(again, first);
            assert_ne!(again, client);
            locks.remove(again).ok().unwrap();
        }
        let failure = locks.get(first).err().unwrap();
        assert_eq!(failure.status, polylock_status::POLYLOCK_INVALID_HANDLE);
        assert!(failure.message.contains("freed already"));
        assert_eq!(
            locks.get(client).err().unwrap().status,
            polylock_status::POLYLOCK_INVALID_HANDLE
        );
        assert_eq!(*clients.get(client).ok().unwrap(), 2);
        let stack = 7u8;
        let foreign = locks.get(&stack as *const u8).err().unwrap();
        assert!(
            foreign.message.contains("never created"),
            "{}",
            foreign.message
        );
        assert!(locks
            .get(std::ptr::null::<u8>())
            .err()
            .unwrap()
            .message
            .contains("NULL"));
    }
}

//! Loss watchers: where the backend can watch a lease
//! ([`Capabilities::loss_watch`](crate::backend::Capabilities::loss_watch)),
//! one watcher per lease reports its loss as soon as the backend shows it.
//!
//! The watchers of one client are futures driven by one task of its keeper
//! (a `FuturesUnordered`, which polls only the watchers that were woken), so
//! a held lease costs a small future rather than a task. A watcher ends when
//! the backend reports the lease gone (the lease is then lost), or when its
//! lease stops being Held (a release starts, it is lost or abandoned) or is
//! dropped: [`LeaseCore::watch_end`] wakes it then. The task ends when the
//! keeper is dropped, with every watcher.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::Shared;
use crate::backend::Backend;
use crate::lease::LeaseCore;
use crate::runtime;

/// Hands leases to the keeper's watcher task.
pub(super) struct Watchers {
    leases: mpsc::UnboundedSender<Arc<LeaseCore>>,
}

impl Watchers {
    /// Starts the watcher task of a keeper; it stops when the keeper (which
    /// owns the returned handle) is dropped.
    pub(super) fn start(shared: Weak<Shared>, backend: Arc<dyn Backend>) -> Self {
        let (leases, added) = mpsc::unbounded_channel();
        runtime::spawn(drive(shared, backend, added));
        Watchers { leases }
    }

    /// Starts watching `lease`.
    pub(super) fn watch(&self, lease: &Arc<LeaseCore>) {
        let _ = self.leases.send(lease.clone());
    }
}

/// The watcher task: takes new leases, polls the woken watchers, and
/// declares lost the leases whose watchers the backend answered.
async fn drive(
    shared: Weak<Shared>,
    backend: Arc<dyn Backend>,
    mut added: mpsc::UnboundedReceiver<Arc<LeaseCore>>,
) {
    let backend = &*backend;
    let mut watchers = FuturesUnordered::new();
    poll_fn(|cx| loop {
        loop {
            match added.poll_recv(cx) {
                Poll::Ready(Some(lease)) => watchers.push(watch(backend, lease)),
                // The keeper is gone.
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        match watchers.poll_next_unpin(cx) {
            Poll::Ready(Some((lease, Some(reason)))) => {
                if let Some(shared) = shared.upgrade() {
                    super::lose(&shared, &lease, &reason);
                }
            }
            Poll::Ready(Some((_, None))) => {}
            // None: no watchers (`added` will wake the task).
            Poll::Ready(None) | Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// One lease's watcher: the backend's reason once it shows the lease gone,
/// or `None` once the lease is no longer Held. It holds its lease, as the
/// keeper does while the lease is kept; every end of a lease wakes it.
async fn watch(backend: &dyn Backend, lease: Arc<LeaseCore>) -> (Arc<LeaseCore>, Option<String>) {
    // The part's own boxed future, not `dyn Backend::watch`'s wrapper: it
    // lives as long as the lease.
    let gone = match backend.loss_watch() {
        Some(part) => part.watch(&lease.grant),
        None => Box::pin(std::future::pending()),
    };
    let reason = WhileHeld {
        lease: &lease,
        gone,
    }
    .await;
    (lease, reason)
}

/// The backend's watch of `lease`, while the lease is Held.
struct WhileHeld<'a> {
    lease: &'a LeaseCore,
    gone: Pin<Box<dyn Future<Output = String> + Send + 'a>>,
}

impl Future for WhileHeld<'_> {
    type Output = Option<String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        if !self.lease.watch_end(cx.waker()) {
            return Poll::Ready(None);
        }
        self.gone.as_mut().poll(cx).map(Some)
    }
}

//! The one process-wide tokio runtime every client, keeper and backend uses.
//!
//! It starts lazily on first use. After `fork()` the parent's runtime threads
//! do not exist in the child, so the runtime is keyed by process id: a child's
//! first call builds a fresh runtime and the parent's is leaked (dropping it
//! would wait for threads that are gone). Clients made before a fork belong to
//! the parent; using one in the child is a [`Error::Usage`].
//!
//! Async API calls run their work here ([`run`]) and await the result, so the
//! caller may be on any executor. The blocking facade ([`block_on`]) waits on
//! the calling thread and refuses to run inside an async runtime, where
//! blocking would deadlock or starve it.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime of this process, started on first use.
pub(crate) fn handle() -> Handle {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|poison| poison.into_inner());
    match slot.as_ref() {
        Some((owner, runtime)) if *owner == pid => runtime.handle().clone(),
        _ => {
            if let Some((_, inherited)) = slot.take() {
                // Forked: the threads behind it are gone; never drop it.
                std::mem::forget(inherited);
            }
            let runtime = Arc::new(
                Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("polylock")
                    .on_thread_start(block_sigpipe)
                    .enable_all()
                    .build()
                    .expect("polylock cannot start its tokio runtime"),
            );
            let handle = runtime.handle().clone();
            *slot = Some((pid, runtime));
            handle
        }
    }
}

/// Blocks SIGPIPE in the calling thread (polylock's own threads). They
/// write to sockets, and a peer that closed its end must be an `EPIPE`
/// error there, not a SIGPIPE that kills a host process that never ignored
/// the signal (C and Go programs do not; Rust, Python and Node do).
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: plain signal-mask calls on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs `fut` on the polylock runtime and awaits its output from any executor.
pub(crate) async fn run<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle()
        .spawn(fut)
        .await
        .map_err(|e| Error::Usage(format!("polylock task did not complete: {e}")))
}

/// Runs `fut` on the polylock runtime and blocks the calling thread until it
/// is done. Fails with [`Error::Usage`] when called from inside a tokio runtime.
pub(crate) fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ensure_blocking_allowed()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    handle().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.blocking_recv()
        .map_err(|_| Error::Usage("polylock task did not complete".into()))
}

/// Fails with [`Error::Usage`] on a thread inside a tokio runtime, where
/// blocking would deadlock or starve it.
pub(crate) fn ensure_blocking_allowed() -> Result<()> {
    if Handle::try_current().is_ok() {
        return Err(Error::Usage(
            "the blocking API was called from inside an async runtime; use the async API there"
                .into(),
        ));
    }
    Ok(())
}

/// A job for the notifier thread.
pub(crate) type Notification = Box<dyn FnOnce() + Send + 'static>;

static NOTIFIER: Mutex<Option<(u32, mpsc::Sender<Notification>)>> = Mutex::new(None);

/// Runs `job` on the process's one notifier thread: a plain thread outside
/// the runtime, so user callbacks may block or call the blocking API. Jobs
/// run one at a time, in order; a slow callback delays the ones after it.
/// The caller catches panics inside `job`.
pub(crate) fn notify(job: Notification) {
    let pid = std::process::id();
    let mut slot = NOTIFIER.lock().unwrap_or_else(|poison| poison.into_inner());
    if !matches!(slot.as_ref(), Some((owner, _)) if *owner == pid) {
        let (tx, rx) = mpsc::channel::<Notification>();
        std::thread::Builder::new()
            .name("polylock-notify".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("polylock cannot start its notifier thread");
        *slot = Some((pid, tx));
    }
    if let Some((_, tx)) = slot.as_ref() {
        let _ = tx.send(job);
    }
}

/// Spawns `fut` on the polylock runtime without waiting for it.
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

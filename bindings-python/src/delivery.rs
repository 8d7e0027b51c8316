//! The one thread that hands polylock's results to Python.
//!
//! polylock's runtime has few worker threads, and they renew every lease of
//! the process. A worker that waited for the GIL (held for seconds by a long
//! C call, a busy thread) would stall renewals until leases were lost. So
//! nothing on a worker enters Python: completions (asyncio settlements,
//! wait-started hooks of async acquisitions) are queued here, on a plain
//! channel, and this thread takes the GIL, turns results into Python objects
//! and hands them to their event loop (`loop.call_soon_threadsafe`).
//!
//! Jobs run one at a time, in order; the thread takes the GIL once for every
//! job waiting. It is started on first use, again in a forked child (whose
//! copy of the parent's thread does not exist), and it drops its jobs
//! without running them once the interpreter is exiting.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Mutex;

use pyo3::prelude::*;

use crate::bridge;

/// Work for the delivery thread, run with the GIL held.
pub(crate) type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send + 'static>;

/// The delivery thread's queue, with the process it belongs to.
static QUEUE: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);

/// Queues `job` for the delivery thread; never blocks (call it from
/// polylock's runtime).
pub(crate) fn send(job: Job) {
    let pid = std::process::id();
    let mut queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    if !matches!(queue.as_ref(), Some((owner, _)) if *owner == pid) {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("polylock-python".into())
            .spawn(move || run(rx));
        if started.is_err() {
            // No thread, nobody to deliver to: the job's objects are
            // dropped (Python references freed when the GIL is next held).
            return;
        }
        *queue = Some((pid, tx));
    }
    if let Some((_, tx)) = queue.as_ref() {
        let _ = tx.send(job);
    }
}

/// The delivery thread: each batch of waiting jobs under one GIL hold.
fn run(jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let mut batch = Some(batch);
        bridge::with_python(|py| {
            for job in batch.take().into_iter().flatten() {
                run_one(py, job);
            }
            // Jobs that arrived meanwhile, while the GIL is held anyway.
            for job in jobs.try_iter() {
                run_one(py, job);
            }
        });
        // Exiting interpreter: not run; dropped here.
        drop(batch);
    }
}

/// Runs one job; a panic in it is reported, and the thread goes on.
fn run_one(py: Python<'_>, job: Job) {
    if catch_unwind(AssertUnwindSafe(|| job(py))).is_err() {
        eprintln!("polylock: a result delivery to Python panicked; ignored");
    }
}

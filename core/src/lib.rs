//! # polylock
//!
//! Distributed locks and counting semaphores with fencing tokens, over the
//! coordination services teams already run, selected by URL:
//!
//! - `memory://[namespace]`: in-process; the embedded default and test oracle.
//! - `consul://host:port` (and `consul+https://`): Consul sessions and KV,
//!   compatible with HashiCorp's `api.Lock`, `api.Semaphore` and `consul lock`.
//! - `mongodb://…`: an insert-only lease ledger in MongoDB (or FerretDB).
//! - `ldlm://host:port` (and `ldlms://` with TLS): the LDLM lock server over
//!   gRPC; the server waits for the lock, and frees a client's locks when
//!   its connection ends. No fencing tokens (an efficiency lock).
//!
//! Each backend but `memory://` is behind the cargo feature of its name
//! (`consul`, `mongodb`, `ldlm`), all on by default ([`url::SCHEMES`] lists
//! what a build understands).
//!
//! Every lease is renewed by the client's keeper until released; when the
//! keeper cannot prove a lease before its deadline, the lease is lost:
//! [`Lease::is_held`] turns false and [`Lease::on_lost`] callbacks fire once.
//!
//! ```no_run
//! # async fn demo() -> polylock::Result<()> {
//! use std::time::Duration;
//! use polylock::{Client, LockOptions};
//!
//! let client = Client::connect("memory://").await?;
//! let lock = client.lock("jobs/nightly", LockOptions::mutex().ttl(Duration::from_secs(10)))?;
//! let lease = lock.acquire(Duration::from_secs(5)).await?;
//! println!("fencing token {:?}", lease.fencing_token());
//! lease.release().await?;
//! # Ok(()) }
//! ```
//!
//! The same API without async is in [`blocking`].

#![warn(missing_docs)]

pub mod backend;
pub mod backends;
pub mod blocking;
mod client;
mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
mod keeper;
mod lease;
mod lease_slot;
mod lock_events;
pub mod metrics;
mod model;
mod options;
mod registry;
mod runtime;
mod traced;
pub mod url;
mod waiting;

pub use backend::Capabilities;
pub use client::{Client, Lock};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Observer};
pub use inspect::{HolderStatus, LockStatus};
pub use lease::{Lease, LostCallback, LostEvent};
pub use lease_slot::{AcquireHooks, LeaseSlot, ListenerId, LostListener};
pub use lock_events::{LockEvent, LockEventKind, LockEvents, LockFeed};
pub use options::{
    default_holder_value, validate_limit, validate_name, validate_ttl, ClientOptions, LockOptions,
    Secret, DEFAULT_TTL, MAX_NAME_LEN, MAX_TTL, MAX_VALUE_LEN, MIN_TTL,
};
pub use registry::{Registry, RegistryEvent, RegistryEvents};
pub use waiting::Wait;

/// Runs `fut` on polylock's shared runtime (where all backend I/O runs) and
/// returns its handle; dropping the handle detaches, `abort` cancels. For
/// bindings that bridge polylock's futures to another event loop.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime::spawn(fut)
}

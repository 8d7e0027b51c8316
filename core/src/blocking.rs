//! The blocking API: the async API run on polylock's shared runtime, for
//! callers without an executor (and for the C, Python and Node bindings).
//!
//! Every call blocks the calling thread. Called from inside an async runtime
//! it returns [`Error::Usage`] instead of deadlocking; use the async API there.
//! A [`Guard`] releases its lease when dropped.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lease::{LeaseRef, LostEvent};
use crate::options::{ClientOptions, LockOptions};
use crate::runtime;
use crate::waiting::Wait;
use crate::Capabilities;

/// Runs a future of polylock's async API to completion on the calling
/// thread (which must not be inside an async runtime: that is
/// [`Error::Usage`]). For bindings that hold async handles but offer
/// blocking calls.
pub fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime::block_on(fut)
}

/// A blocking client; see [`crate::Client`].
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
}

impl Client {
    /// Connects to the backend named by `url`.
    pub fn connect(url: &str) -> Result<Client> {
        Client::from_options(ClientOptions::new(url))
    }

    /// Connects with the given options.
    pub fn from_options(options: ClientOptions) -> Result<Client> {
        let inner = runtime::block_on(crate::Client::from_options(options))??;
        Ok(Client { inner })
    }

    /// A handle for the lock `name`; see [`crate::Client::lock`].
    pub fn lock(&self, name: &str, options: LockOptions) -> Result<Lock> {
        Ok(Lock {
            inner: self.inner.lock(name, options)?,
        })
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    /// The async client behind this one.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }
}

/// A blocking lock handle; see [`crate::Lock`].
#[derive(Clone, Debug)]
pub struct Lock {
    inner: crate::Lock,
}

impl Lock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Takes the lock if it is free now; `Ok(None)` if it is busy.
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        self.acquire_with(Wait::No)
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn acquire(&self, timeout: Duration) -> Result<Guard> {
        self.acquire_with(Wait::For(timeout))?
            .ok_or_else(|| Error::Backend("acquire ended without a lease".into()))
    }

    /// Takes the lock, waiting as long as it takes.
    pub fn acquire_forever(&self) -> Result<Guard> {
        self.acquire_with(Wait::Forever)?
            .ok_or_else(|| Error::Backend("acquire ended without a lease".into()))
    }

    /// Takes the lock, waiting as `wait` allows.
    pub fn acquire_with(&self, wait: Wait) -> Result<Option<Guard>> {
        let lock = self.inner.clone();
        let lease = runtime::block_on(async move { lock.acquire_with(wait).await })??;
        Ok(lease.map(|lease| Guard {
            inner: lease.into_ref(),
        }))
    }

    /// Takes the lock (waiting at most `timeout`), runs `body`, releases.
    /// `body`'s result is returned; a failed release is reported only when
    /// `body` succeeded.
    pub fn synchronize<T>(&self, timeout: Duration, body: impl FnOnce(&Guard) -> T) -> Result<T> {
        let guard = self.acquire(timeout)?;
        let output = body(&guard);
        guard.release()?;
        Ok(output)
    }
}

/// A held lease that is released when dropped; see [`crate::Lease`].
pub struct Guard {
    inner: LeaseRef,
}

impl Guard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.inner.core.grant.name
    }

    /// The backend's holder id.
    pub fn holder(&self) -> &str {
        &self.inner.core.grant.holder
    }

    /// The fencing token, where the backend gives one.
    pub fn fencing_token(&self) -> Option<u64> {
        self.inner.core.grant.fencing_token
    }

    /// The TTL the backend granted.
    pub fn ttl(&self) -> Duration {
        self.inner.core.grant.ttl
    }

    /// True while the lease is held and proven.
    pub fn is_held(&self) -> bool {
        self.inner.core.is_held()
    }

    /// How long the lease is still proven held; zero once it is not.
    pub fn time_to_expiration(&self) -> Duration {
        self.inner.time_to_expiration()
    }

    /// True when a renewal is due.
    pub fn needs_renew(&self) -> bool {
        self.inner.needs_renew()
    }

    /// Why the lease was lost, once it was.
    pub fn loss_reason(&self) -> Option<String> {
        self.inner.core.loss_reason()
    }

    /// Renews now.
    pub fn renew(&self) -> Result<()> {
        runtime::block_on(self.inner.clone().renew())?
    }

    /// Releases now; see [`crate::Lease::release`] for the errors.
    pub fn release(&self) -> Result<()> {
        runtime::block_on(self.inner.clone().release())?
    }

    /// Runs `callback` once if the lease is lost; see [`crate::Lease::on_lost`].
    pub fn on_lost(&self, callback: impl FnOnce(&LostEvent) + Send + 'static) {
        self.inner.core.on_lost(Box::new(callback));
    }

    /// Stops renewing without releasing; see [`crate::Lease::abandon`].
    pub fn abandon(self) {
        self.inner.clone().abandon();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.inner.core.is_kept() {
            return;
        }
        match runtime::block_on(self.inner.clone().release()) {
            Ok(Ok(())) => {}
            Ok(Err(error)) if !error.is_transient() => {
                tracing::warn!(name = %self.name(), %error, "releasing a dropped guard failed")
            }
            // Unreachable backend, or inside an async runtime: keep trying
            // in the background.
            _ => self.inner.clone().release_in_background(),
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.name())
            .field("holder", &self.holder())
            .field("fencing_token", &self.fencing_token())
            .field("is_held", &self.is_held())
            .finish()
    }
}

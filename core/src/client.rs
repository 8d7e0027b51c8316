//! The async API: [`Client`], [`Lock`], and the glue from a granted
//! [`Grant`] to a kept [`Lease`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::{AcquireRequest, Backend, Capabilities};
use crate::error::{Error, Result};
use crate::events::{Event, Observers};
use crate::keeper::{Keeper, Timing};
use crate::lease::{Lease, LeaseCore, LeaseRef, RenewedBy};
use crate::lock_events::{LockEvents, Selection};
use crate::options::{validate_name, ClientOptions, LockOptions, ResolvedLockOptions};
use crate::registry::Registrations;
use crate::runtime;
use crate::waiting::{self, CallerGone, Wait, WaitStartedHook};

/// What a client shares with its locks, leases and keeper.
pub(crate) struct ClientInner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) keeper: Keeper,
    pub(crate) observers: Observers,
    pub(crate) options: ClientOptions,
    /// The names this client registered ([`crate::Registry`]).
    pub(crate) registrations: Registrations,
    /// `options.default_value`, shared by the leases that hold it.
    default_value: Arc<String>,
    pid: u32,
    next_lease: AtomicU64,
}

impl ClientInner {
    /// Fails in a forked child: the client's runtime and connections belong
    /// to the parent.
    pub(crate) fn check_process(&self) -> Result<()> {
        if std::process::id() == self.pid {
            Ok(())
        } else {
            Err(Error::Usage(
                "this client was created before fork(); create a new one in the child".into(),
            ))
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            let backend = self.backend.clone();
            runtime::spawn(async move { backend.close().await });
        }
    }
}

/// A connection to one backend. Cheap to clone; clones share the connection,
/// the session and the keeper.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

impl Client {
    /// Connects to the backend named by `url` (`memory://`, `consul://host:port`, …)
    /// with default options.
    pub async fn connect(url: &str) -> Result<Client> {
        Client::from_options(ClientOptions::new(url)).await
    }

    /// Connects with the given options.
    pub async fn from_options(options: ClientOptions) -> Result<Client> {
        options.validate()?;
        runtime::run(async move {
            let backend = crate::url::connect(&options).await?;
            Ok(Client::from_backend(backend, options))
        })
        .await?
    }

    /// A client over a connected backend (starts its keeper on the runtime:
    /// call it there).
    pub(crate) fn from_backend(backend: Arc<dyn Backend>, options: ClientOptions) -> Client {
        let observers = Observers::new(options.observers.clone());
        let keeper = Keeper::start(
            backend.clone(),
            observers.clone(),
            Timing {
                renew_fraction: options.renew_fraction,
                safety_fraction: options.safety_fraction,
            },
        );
        Client {
            inner: Arc::new(ClientInner {
                backend,
                keeper,
                observers,
                registrations: Registrations::default(),
                default_value: Arc::new(options.default_value.clone()),
                options,
                pid: std::process::id(),
                next_lease: AtomicU64::new(1),
            }),
        }
    }

    /// A handle for the lock `name`. Checks the name and options; does not
    /// talk to the backend.
    pub fn lock(&self, name: &str, options: LockOptions) -> Result<Lock> {
        validate_name(name)?;
        let resolved = ResolvedLockOptions::resolve(&options, &self.inner.options)?;
        let capabilities = self.capabilities();
        if resolved.limit > 1 && !capabilities.semaphores {
            return Err(Error::invalid(format!(
                "the {} backend does not support limits above 1",
                self.inner.backend.scheme()
            )));
        }
        Ok(Lock {
            client: self.clone(),
            request: Arc::new(AcquireRequest {
                name: name.to_string(),
                limit: resolved.limit,
                ttl: resolved.ttl,
                value: resolved.value,
            }),
            auto_renew: options.auto_renew,
        })
    }

    /// The acquisitions, releases and expiries of lock `name` by every
    /// client, from now on. Needs [`Capabilities::event_stream`].
    pub fn watch(&self, name: &str) -> Result<LockEvents> {
        validate_name(name)?;
        self.lock_events(Selection::Name(name.to_string()))
    }

    /// The acquisitions, releases and expiries of every lock whose name
    /// starts with `prefix`, by every client, from now on. Needs
    /// [`Capabilities::event_stream`].
    pub fn watch_prefix(&self, prefix: &str) -> Result<LockEvents> {
        crate::inspect::validate_prefix(prefix)?;
        self.lock_events(Selection::Prefix(prefix.to_string()))
    }

    fn lock_events(&self, selection: Selection) -> Result<LockEvents> {
        let prefix = match &selection {
            Selection::Name(name) | Selection::Prefix(name) => name.as_str(),
        };
        let events = self
            .inner
            .backend
            .lock_events(prefix)
            .ok_or_else(|| self.inner.backend.unsupported("lock event streams"))?;
        Ok(LockEvents::new(selection, events))
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.backend.capabilities()
    }

    /// The backend's URL scheme (`"memory"`, `"consul"`, …).
    pub fn scheme(&self) -> &'static str {
        self.inner.backend.scheme()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// A named lock of a client: acquire it to get a [`Lease`].
#[derive(Clone)]
pub struct Lock {
    pub(crate) client: Client,
    pub(crate) request: Arc<AcquireRequest>,
    /// Whether polylock renews its leases ([`LockOptions::auto_renew`]).
    pub(crate) auto_renew: bool,
}

impl Lock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.request.name
    }

    /// The lock's limit (1 for a mutex).
    pub fn limit(&self) -> u32 {
        self.request.limit
    }

    /// The TTL its leases get.
    pub fn ttl(&self) -> Duration {
        self.request.ttl
    }

    /// Whether polylock renews its leases ([`LockOptions::auto_renew`]).
    pub fn auto_renew(&self) -> bool {
        self.auto_renew
    }

    /// Takes the lock if it is free now; `Ok(None)` if it is busy.
    pub async fn try_acquire(&self) -> Result<Option<Lease>> {
        self.acquire_with(Wait::No).await
    }

    /// Takes the lock, waiting at most `timeout`; [`Error::Timeout`] after that.
    pub async fn acquire(&self, timeout: Duration) -> Result<Lease> {
        self.acquire_with(Wait::For(timeout))
            .await?
            .ok_or_else(|| Error::Backend("acquire ended without a lease".into()))
    }

    /// Takes the lock, waiting as long as it takes.
    pub async fn acquire_forever(&self) -> Result<Lease> {
        self.acquire_with(Wait::Forever)
            .await?
            .ok_or_else(|| Error::Backend("acquire ended without a lease".into()))
    }

    /// Takes the lock, waiting as `wait` allows; `Ok(None)` only for [`Wait::No`].
    ///
    /// Cancel-safe: dropping the returned future stops the wait, and a lease
    /// granted just as it was dropped is released, never leaked.
    pub async fn acquire_with(&self, wait: Wait) -> Result<Option<Lease>> {
        let inner = self.client.inner.clone();
        inner.check_process()?;
        let request = self.request.clone();
        let auto_renew = self.auto_renew;
        let (_caller_here, caller_gone) = oneshot::channel::<()>();
        let (reply, outcome) = oneshot::channel();
        runtime::spawn(async move {
            let renewal = RenewedBy::choose(auto_renew);
            let result = acquire_lease(inner, &request, wait, renewal, caller_gone, None).await;
            if let Err(Ok(Some(orphan))) = reply.send(result) {
                // The caller left just as the lock was granted.
                orphan.release_in_background();
            }
        });
        let lease = outcome
            .await
            .map_err(|_| Error::Usage("the polylock runtime stopped".into()))??;
        Ok(lease.map(Lease::new))
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.request.name)
            .field("limit", &self.request.limit)
            .field("ttl", &self.request.ttl)
            .finish()
    }
}

/// Acquires and hands the grant to the keeper. Runs on the polylock runtime.
/// `wait_started` runs once if the call starts waiting.
pub(crate) async fn acquire_lease(
    inner: Arc<ClientInner>,
    request: &AcquireRequest,
    wait: Wait,
    renewal: RenewedBy,
    caller_gone: CallerGone,
    wait_started: Option<WaitStartedHook>,
) -> Result<Option<LeaseRef>> {
    let started = Instant::now();
    let backend = inner.backend.as_ref();
    let acquired = waiting::acquire(
        backend,
        &inner.observers,
        request,
        wait,
        caller_gone,
        wait_started,
    )
    .await?;
    let Some((grant, sent)) = acquired else {
        return Ok(None);
    };
    let timing = inner.keeper.timing();
    let mut deadline = timing.deadline(sent, grant.ttl);
    if let Some(proven_until) = grant.proven_until {
        deadline = deadline.min(proven_until - grant.ttl.mul_f64(timing.safety_fraction));
    }
    // Leases with the client's default value share it.
    let value = if request.value == *inner.default_value {
        inner.default_value.clone()
    } else {
        Arc::new(request.value.clone())
    };
    let core = Arc::new(LeaseCore::new(
        inner.next_lease.fetch_add(1, Ordering::Relaxed),
        grant,
        value,
        deadline,
        renewal,
    ));
    inner.keeper.keep(&core);
    inner.observers.emit(|| Event::Acquired {
        name: core.grant.name.clone(),
        fencing_token: core.grant.fencing_token,
        waited: started.elapsed(),
    });
    Ok(Some(LeaseRef {
        core,
        client: inner,
    }))
}

//! `connect` and `NativeClient`: a backend connection, and the handles it
//! makes (locks, watches, registries).

use napi::bindgen_prelude::{ObjectFinalize, ToNapiValue};
use napi::{sys, Env};
use napi_derive::napi;
use polylock::{ClientOptions, LockOptions, Secret};

use crate::bridge::{self, IntoJs, Raw};
use crate::errors::{millis, OrThrow};
use crate::lock::NativeLock;
use crate::registry::NativeRegistry;
use crate::watch::NativeEvents;

/// Client options from JavaScript.
#[napi(object)]
pub struct ClientOptionsJs {
    /// The backend's ACL token (else the URL or CONSUL_HTTP_TOKEN).
    pub token: Option<String>,
    /// TTL in ms of locks that give none (15 000).
    pub default_ttl: Option<f64>,
    /// Holder value stored with leases (host name and pid).
    pub default_value: Option<String>,
}

/// Lock options from JavaScript.
#[napi(object)]
pub struct LockOptionsJs {
    /// Lease TTL in ms; renewed every third of it until released.
    pub ttl: Option<f64>,
    /// 1: mutex; N: counting semaphore.
    pub limit: Option<u32>,
    /// Holder value stored with the lease.
    pub value: Option<String>,
    /// false: the caller renews (`renew()` within each TTL, or the lease is
    /// released and reported lost); true (default): polylock renews.
    pub auto_renew: Option<bool>,
}

/// What the backend can do, as the core declares it
/// (`polylock::Capabilities`).
#[napi(object)]
pub struct CapabilitiesJs {
    /// Leases carry fencing tokens that strictly increase per name.
    pub fencing: bool,
    /// A lost lease is noticed before the next renewal.
    pub loss_watch: bool,
    /// Waits are woken by the server, not by polling.
    pub change_notifications: bool,
    /// Limits above 1 (counting semaphores) work.
    pub semaphores: bool,
    /// One renewal keeps many leases (a Consul session).
    pub shared_renewal: bool,
    /// `watch` streams every client's acquisitions and releases.
    pub event_stream: bool,
    /// Operator views and the registry's look-ups work.
    pub inspection: bool,
    /// The server waits for the lock on the client's behalf (LDLM).
    pub server_wait: bool,
    /// A lock nobody holds takes a new limit at once.
    pub idle_limit_resets: bool,
    /// A lease outlives the connection that took it (kept until its TTL).
    pub outlives_connection: bool,
}

impl From<polylock::Capabilities> for CapabilitiesJs {
    fn from(c: polylock::Capabilities) -> Self {
        CapabilitiesJs {
            fencing: c.fencing,
            loss_watch: c.loss_watch,
            change_notifications: c.change_notifications,
            semaphores: c.semaphores,
            shared_renewal: c.shared_renewal,
            event_stream: c.event_stream,
            inspection: c.inspection,
            server_wait: c.server_wait,
            idle_limit_resets: c.idle_limit_resets,
            outlives_connection: c.outlives_connection,
        }
    }
}

/// What V8 is told a client costs besides its small JS object: the
/// connections, session, buffers and tasks it keeps, which are freed only
/// once the client and every handle made from it are collected. Untold, V8
/// sees no reason to hurry: a program that drops clients (a new one per
/// job) keeps those until a full collection, which a small heap may not
/// have for many minutes (the soak's Node process had none in 12). Told,
/// V8 collects after a few dozen dropped clients (it starts a full
/// collection once external memory grew by 64 MiB).
const CLIENT_EXTERNAL_BYTES: i64 = 1 << 20;

/// A connected client.
#[napi(custom_finalize)]
pub struct NativeClient {
    inner: polylock::Client,
}

impl IntoJs for NativeClient {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        let mut total = 0;
        // Undone in `finalize`.
        unsafe { sys::napi_adjust_external_memory(env, CLIENT_EXTERNAL_BYTES, &mut total) };
        unsafe { ToNapiValue::to_napi_value(env, self) }
    }
}

impl ObjectFinalize for NativeClient {
    fn finalize(self, env: Env) -> napi::Result<()> {
        env.adjust_external_memory(-CLIENT_EXTERNAL_BYTES)?;
        Ok(())
    }
}

fn client_options(
    url: String,
    options: Option<ClientOptionsJs>,
) -> polylock::Result<ClientOptions> {
    let mut resolved = ClientOptions::new(url);
    if let Some(options) = options {
        if let Some(token) = options.token {
            resolved.token = Some(Secret::new(token));
        }
        if let Some(ttl) = options.default_ttl {
            resolved.default_ttl = millis("defaultTtl", ttl)?;
        }
        if let Some(value) = options.default_value {
            resolved.default_value = value;
        }
    }
    Ok(resolved)
}

/// Connects to the backend named by `url`: a Promise of the client.
#[napi]
pub fn connect(env: Env, url: String, options: Option<ClientOptionsJs>) -> napi::Result<Raw> {
    let (deferred, promise) = bridge::promise(&env)?;
    match client_options(url, options) {
        Ok(resolved) => {
            polylock::spawn(async move {
                let client = polylock::Client::from_options(resolved).await;
                deferred.settle_result(client.map(|inner| NativeClient { inner }));
            });
        }
        Err(error) => deferred.reject_now(&env, &error),
    }
    Ok(promise)
}

fn lock_options(options: Option<LockOptionsJs>) -> polylock::Result<LockOptions> {
    let mut resolved = LockOptions::mutex();
    if let Some(options) = options {
        if let Some(limit) = options.limit {
            resolved = LockOptions::semaphore(limit);
        }
        if let Some(ttl) = options.ttl {
            resolved = resolved.ttl(millis("ttl", ttl)?);
        }
        if let Some(value) = options.value {
            resolved = resolved.value(value);
        }
        if let Some(auto_renew) = options.auto_renew {
            resolved = resolved.auto_renew(auto_renew);
        }
    }
    Ok(resolved)
}

#[napi]
impl NativeClient {
    /// A handle for the lock `name` (contacts nobody yet).
    #[napi]
    pub fn lock(
        &self,
        env: Env,
        name: String,
        options: Option<LockOptionsJs>,
    ) -> napi::Result<NativeLock> {
        let lock = lock_options(options).and_then(|options| self.inner.lock(&name, options));
        Ok(NativeLock::new(lock.or_throw(&env)?))
    }

    /// The distributed lock/unlock events of `name` (where the backend
    /// supports them).
    #[napi]
    pub fn watch(&self, env: Env, name: String) -> napi::Result<NativeEvents> {
        Ok(NativeEvents::new(self.inner.watch(&name).or_throw(&env)?))
    }

    /// The name registry `namespace`.
    #[napi]
    pub fn registry(&self, env: Env, namespace: String) -> napi::Result<NativeRegistry> {
        Ok(NativeRegistry::new(
            self.inner.registry(&namespace).or_throw(&env)?,
        ))
    }

    /// The backend's URL scheme.
    #[napi(getter)]
    pub fn scheme(&self) -> &'static str {
        self.inner.scheme()
    }

    /// What the backend can do.
    #[napi(getter)]
    pub fn capabilities(&self) -> CapabilitiesJs {
        self.inner.capabilities().into()
    }
}

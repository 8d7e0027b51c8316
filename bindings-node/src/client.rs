//! `NativeClient`: a backend connection.

use napi_derive::napi;
use polylock::{ClientOptions, LockOptions, Secret};

use crate::errors::{millis, IntoJs};
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
}

/// A connected client.
#[napi]
pub struct NativeClient {
    inner: polylock::Client,
}

/// Connects to the backend named by `url`.
#[napi]
pub async fn connect(url: String, options: Option<ClientOptionsJs>) -> napi::Result<NativeClient> {
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
    let inner = polylock::Client::from_options(resolved).await.js()?;
    Ok(NativeClient { inner })
}

#[napi]
impl NativeClient {
    /// A handle for the lock `name` (contacts nobody yet).
    #[napi]
    pub fn lock(&self, name: String, options: Option<LockOptionsJs>) -> napi::Result<NativeLock> {
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
        }
        Ok(NativeLock::new(self.inner.lock(&name, resolved).js()?))
    }

    /// The distributed lock/unlock events of `name` (where the backend
    /// supports them).
    #[napi]
    pub fn watch(&self, name: String) -> napi::Result<NativeEvents> {
        Ok(NativeEvents::new(self.inner.watch(&name).js()?))
    }

    /// The name registry `namespace`.
    #[napi]
    pub fn registry(&self, namespace: String) -> napi::Result<NativeRegistry> {
        Ok(NativeRegistry::new(self.inner.registry(&namespace).js()?))
    }

    /// The backend's URL scheme.
    #[napi(getter)]
    pub fn scheme(&self) -> &'static str {
        self.inner.scheme()
    }
}

//! `NativeRegistry`: the name registry of one namespace.

use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env};
use napi_derive::napi;

use crate::bridge::{self, IntoJs, Raw};
use crate::errors::OrThrow;
use crate::watch::NativeEvents;

/// One registered name and its value.
#[napi(object)]
pub struct RegistrationJs {
    /// The name (without the namespace).
    pub name: String,
    /// The value it is registered with.
    pub value: String,
}

/// Every registration of a namespace.
struct Registrations(Vec<(String, String)>);

impl IntoJs for Registrations {
    fn into_js(self, env: sys::napi_env) -> napi::Result<sys::napi_value> {
        let list: Vec<RegistrationJs> = self
            .0
            .into_iter()
            .map(|(name, value)| RegistrationJs { name, value })
            .collect();
        unsafe { ToNapiValue::to_napi_value(env, list) }
    }
}

/// Names registered in one namespace, by any client.
#[napi]
pub struct NativeRegistry {
    inner: polylock::Registry,
}

impl NativeRegistry {
    pub(crate) fn new(inner: polylock::Registry) -> Self {
        NativeRegistry { inner }
    }
}

#[napi]
impl NativeRegistry {
    /// Registers `name` with `value` while this process lives: a Promise.
    #[napi]
    pub fn register(&self, env: Env, name: String, value: String) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let registry = self.inner.clone();
        polylock::spawn(async move {
            deferred.settle_result(registry.register(&name, &value).await);
        });
        Ok(promise)
    }

    /// A Promise of the value `name` is registered with, or null.
    #[napi]
    pub fn whereis(&self, env: Env, name: String) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let registry = self.inner.clone();
        polylock::spawn(async move { deferred.settle_result(registry.whereis(&name).await) });
        Ok(promise)
    }

    /// Gives up this client's registration of `name`: a Promise.
    #[napi]
    pub fn unregister(&self, env: Env, name: String) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let registry = self.inner.clone();
        polylock::spawn(async move { deferred.settle_result(registry.unregister(&name).await) });
        Ok(promise)
    }

    /// The lock events of the namespace (full lock names); `index.js` turns
    /// them into registration events.
    #[napi]
    pub fn events(&self, env: Env) -> napi::Result<NativeEvents> {
        Ok(NativeEvents::new(self.inner.lock_events().or_throw(&env)?))
    }

    /// A Promise of every registered name with its value, sorted by name.
    #[napi]
    pub fn list(&self, env: Env) -> napi::Result<Raw> {
        let (deferred, promise) = bridge::promise(&env)?;
        let registry = self.inner.clone();
        polylock::spawn(async move {
            deferred.settle_result(registry.list().await.map(Registrations));
        });
        Ok(promise)
    }
}

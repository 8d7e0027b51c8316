//! `NativeRegistry`: the name registry of one namespace.

use napi_derive::napi;

use crate::errors::IntoJs;
use crate::watch::NativeEvents;

/// One registered name and its value.
#[napi(object)]
pub struct RegistrationJs {
    /// The name (without the namespace).
    pub name: String,
    /// The value it is registered with.
    pub value: String,
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
    /// Registers `name` with `value` while this process lives.
    #[napi]
    pub async fn register(&self, name: String, value: String) -> napi::Result<()> {
        self.inner.register(&name, &value).await.js()
    }

    /// The value `name` is registered with, or null.
    #[napi]
    pub async fn whereis(&self, name: String) -> napi::Result<Option<String>> {
        self.inner.whereis(&name).await.js()
    }

    /// Gives up this client's registration of `name`.
    #[napi]
    pub async fn unregister(&self, name: String) -> napi::Result<()> {
        self.inner.unregister(&name).await.js()
    }

    /// The lock events of the namespace (full lock names); `index.js` turns
    /// them into registration events.
    #[napi]
    pub fn events(&self) -> napi::Result<NativeEvents> {
        Ok(NativeEvents::new(self.inner.lock_events().js()?))
    }

    /// Every registered name with its value, sorted by name.
    #[napi]
    pub async fn list(&self) -> napi::Result<Vec<RegistrationJs>> {
        let entries = self.inner.list().await.js()?;
        Ok(entries
            .into_iter()
            .map(|(name, value)| RegistrationJs { name, value })
            .collect())
    }
}

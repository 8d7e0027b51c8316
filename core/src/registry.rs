//! The name registry (consuela's `register`/`whereis`): a process registers a
//! name with a value (an address, a node id), holds it as a lease for as
//! long as the client lives, and anyone can look the name up. A registry is
//! a namespace of lock names (`NAMESPACE/NAME`), so it works on every
//! backend, with the same safety: a registration is a mutex lease, renewed by
//! the keeper until [`Registry::unregister`] or the end of the process.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::lock_events::{LockEventKind, LockEvents};
use crate::options::{validate_name, LockOptions};

/// The registrations a client holds, by full lock name.
#[derive(Default)]
pub(crate) struct Registrations(Mutex<HashMap<String, Lease>>);

impl Registrations {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One namespace of registered names, seen through a client. Cheap to make
/// ([`Client::registry`]); registrations belong to the client, not to this handle.
#[derive(Clone, Debug)]
pub struct Registry {
    client: Client,
    namespace: String,
}

/// A change in a registry ([`Registry::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEvent {
    /// The registered name (without the namespace).
    pub name: String,
    /// True when the name was registered, false when it was unregistered
    /// or its registration expired.
    pub registered: bool,
    /// The registering lease's holder id.
    pub holder: String,
}

/// The stream of [`RegistryEvent`]s of one namespace.
pub struct RegistryEvents {
    prefix: String,
    events: LockEvents,
}

impl RegistryEvents {
    /// The next registration or unregistration; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<RegistryEvent> {
        let event = self.events.next().await?;
        Some(RegistryEvent {
            name: event.name[self.prefix.len()..].to_string(),
            registered: event.kind == LockEventKind::Acquired,
            holder: event.holder,
        })
    }

    /// Resolves once the stream sees every change (see [`LockEvents::ready`]).
    pub async fn ready(&mut self) {
        self.events.ready().await
    }
}

impl Client {
    /// The registry `namespace` (a valid lock name) of this client's backend.
    pub fn registry(&self, namespace: &str) -> Result<Registry> {
        validate_name(namespace)?;
        Ok(Registry {
            client: self.clone(),
            namespace: namespace.to_string(),
        })
    }
}

impl Registry {
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn lock_name(&self, name: &str) -> Result<String> {
        validate_name(name)?;
        Ok(format!("{}/{name}", self.namespace))
    }

    /// Registers `name` with `value`, held until [`Registry::unregister`] or
    /// the end of the process (or until the lease is lost). A registration
    /// keeps its client alive. Fails with
    /// [`Error::Conflict`] when the name is registered already, by anyone.
    pub async fn register(&self, name: &str, value: &str) -> Result<()> {
        let full = self.lock_name(name)?;
        let registrations = &self.client.inner.registrations;
        if registrations.map().get(&full).is_some_and(Lease::is_held) {
            return Err(taken(name, "by this client"));
        }
        let lock = self.client.lock(&full, LockOptions::mutex().value(value))?;
        let Some(lease) = lock.try_acquire().await? else {
            let by = match self.whereis(name).await {
                Ok(Some(value)) => format!("with value {value:?}"),
                _ => "by another client".to_string(),
            };
            return Err(taken(name, &by));
        };
        // A replaced registration was lost: dropping it releases nothing.
        registrations.map().insert(full, lease);
        Ok(())
    }

    /// The value `name` is registered with, or `None`.
    pub async fn whereis(&self, name: &str) -> Result<Option<String>> {
        let status = self.client.status(&self.lock_name(name)?).await?;
        Ok(status.holders.into_iter().next().map(|h| h.value))
    }

    /// Gives up this client's registration of `name`. Fails with
    /// [`Error::NotHeld`] when this client has not registered it, and with
    /// [`Error::Lost`] when the registration was lost meanwhile.
    pub async fn unregister(&self, name: &str) -> Result<()> {
        let full = self.lock_name(name)?;
        let lease = self
            .client
            .inner
            .registrations
            .map()
            .remove(&full)
            .ok_or_else(|| Error::NotHeld {
                name: name.to_string(),
                reason: "this client has not registered it".into(),
            })?;
        lease.release().await
    }

    /// Every registered name of the namespace (by any client) with its
    /// value, sorted by name.
    pub async fn list(&self) -> Result<Vec<(String, String)>> {
        let prefix = format!("{}/", self.namespace);
        let mut entries = Vec::new();
        for full in self.client.list(&prefix).await? {
            let status = self.client.status(&full).await?;
            if let Some(holder) = status.holders.into_iter().next() {
                entries.push((full[prefix.len()..].to_string(), holder.value));
            }
        }
        Ok(entries)
    }

    /// Registrations and unregistrations in the namespace, by any client,
    /// from now on. Needs [`crate::Capabilities::event_stream`].
    pub fn events(&self) -> Result<RegistryEvents> {
        Ok(RegistryEvents {
            events: self.lock_events()?,
            prefix: format!("{}/", self.namespace),
        })
    }

    /// The lock events behind [`Registry::events`], with full lock names
    /// (`NAMESPACE/NAME`): for bindings that already stream lock events.
    pub fn lock_events(&self) -> Result<LockEvents> {
        self.client.watch_prefix(&format!("{}/", self.namespace))
    }
}

fn taken(name: &str, by: &str) -> Error {
    Error::Conflict {
        name: name.to_string(),
        detail: format!("the name is registered already, {by}"),
    }
}

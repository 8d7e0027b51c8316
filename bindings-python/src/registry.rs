//! `polylock.Registry`: the name registry of one namespace
//! (`client.registry("services")`): register a name with a value for as long
//! as the process lives, look names up, list them.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

use crate::bridge;
use crate::errors::to_py;

/// Names registered in one namespace, by any client of the backend. A
/// registration is a lease the client keeps renewing until `unregister` or
/// the end of the process.
#[pyclass(frozen, module = "polylock")]
pub(crate) struct Registry {
    inner: polylock::Registry,
}

impl Registry {
    pub(crate) fn new(inner: polylock::Registry) -> Self {
        Registry { inner }
    }
}

#[pymethods]
impl Registry {
    /// Registers `name` with `value`; `polylock.Conflict` if it is registered already.
    fn register(&self, py: Python<'_>, name: String, value: String) -> PyResult<()> {
        let registry = self.inner.clone();
        bridge::wait(py, async move { registry.register(&name, &value).await })
    }

    /// The value `name` is registered with, or None.
    fn whereis(&self, py: Python<'_>, name: String) -> PyResult<Option<String>> {
        let registry = self.inner.clone();
        bridge::wait(py, async move { registry.whereis(&name).await })
    }

    /// Gives up this client's registration of `name`; `polylock.NotHeld` if
    /// this client did not register it.
    fn unregister(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let registry = self.inner.clone();
        bridge::wait(py, async move { registry.unregister(&name).await })
    }

    /// Every registered name of the namespace with its value, sorted by name.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        let registry = self.inner.clone();
        bridge::wait(py, async move { registry.list().await })
    }

    /// Registrations and unregistrations by any client, from now on
    /// (backends with an event stream: memory://, Consul, mongodb://).
    /// Returns once the stream sees every change (on Consul, after its
    /// first read; GIL released meanwhile).
    fn events(&self, py: Python<'_>) -> PyResult<RegistryEvents> {
        let mut events = self.inner.events().map_err(|e| to_py(py, e))?;
        let events = bridge::wait_abortable(py, async move {
            events.ready().await;
            Ok(events)
        })?;
        Ok(RegistryEvents {
            inner: Arc::new(tokio::sync::Mutex::new(events)),
        })
    }

    /// The namespace.
    #[getter]
    fn namespace(&self) -> String {
        self.inner.namespace().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Registry(namespace={:?})", self.inner.namespace())
    }
}

/// A registration or unregistration.
#[pyclass(frozen, get_all, module = "polylock")]
pub(crate) struct RegistryEvent {
    /// The name (without the namespace).
    name: String,
    /// True when registered; False when unregistered or expired.
    registered: bool,
    /// The registering lease's holder id.
    holder: String,
}

#[pymethods]
impl RegistryEvent {
    fn __repr__(&self) -> String {
        format!(
            "RegistryEvent(name={:?}, registered={})",
            self.name,
            if self.registered { "True" } else { "False" }
        )
    }
}

/// The events of one namespace: iterate (blocking, GIL released, Ctrl-C
/// interrupts) or call `next(timeout)`.
#[pyclass(frozen, module = "polylock")]
pub(crate) struct RegistryEvents {
    inner: Arc<tokio::sync::Mutex<polylock::RegistryEvents>>,
}

impl RegistryEvents {
    /// The next event, waiting at most `timeout` (None: as long as it takes).
    fn wait(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<Option<RegistryEvent>> {
        let inner = self.inner.clone();
        let event = bridge::wait_abortable(py, async move {
            let mut events = inner.lock().await;
            Ok(match timeout {
                Some(timeout) => tokio::time::timeout(timeout, events.next())
                    .await
                    .ok()
                    .flatten(),
                None => events.next().await,
            })
        })?;
        Ok(event.map(|e| RegistryEvent {
            name: e.name,
            registered: e.registered,
            holder: e.holder,
        }))
    }
}

#[pymethods]
impl RegistryEvents {
    /// The next event, or None after `timeout` seconds (or once the client is gone).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RegistryEvent>> {
        let timeout = timeout
            .map(|t| {
                Duration::try_from_secs_f64(t).map_err(|_| {
                    to_py(
                        py,
                        polylock::Error::InvalidArgument(format!(
                            "timeout must be a positive number of seconds, not {t}"
                        )),
                    )
                })
            })
            .transpose()?;
        self.wait(py, timeout)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<RegistryEvent> {
        self.wait(py, None)?
            .ok_or_else(|| PyStopIteration::new_err("the client is gone"))
    }
}

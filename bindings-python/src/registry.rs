//! `polylock.Registry`: the name registry of one namespace
//! (`client.registry("services")`): register a name with a value for as long
//! as the process lives, look names up, list them.

use pyo3::prelude::*;

use crate::bridge;

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

    /// The namespace.
    #[getter]
    fn namespace(&self) -> String {
        self.inner.namespace().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Registry(namespace={:?})", self.inner.namespace())
    }
}

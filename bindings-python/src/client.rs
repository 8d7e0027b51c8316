//! `polylock.Client`: a connection to one backend.

use std::time::Duration;

use polylock::{ClientOptions, LockOptions, Secret};
use pyo3::prelude::*;

use crate::bridge;
use crate::capabilities::Capabilities;
use crate::errors::to_py;
use crate::lock::Lock;
use crate::registry::Registry;
use crate::tracking;

/// A backend connection (on Consul: one session renewing all its leases),
/// chosen by URL: `memory://`, `consul://host:port`, `mongodb://…`,
/// `ldlm://host:port`.
#[pyclass(frozen, weakref, module = "polylock")]
pub(crate) struct Client {
    inner: polylock::Client,
}

fn seconds(py: Python<'_>, what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        to_py(
            py,
            polylock::Error::InvalidArgument(format!(
                "{what} must be a positive number of seconds, not {value}"
            )),
        )
    })
}

fn options(
    py: Python<'_>,
    url: &str,
    token: Option<String>,
    default_ttl: Option<f64>,
    default_value: Option<String>,
) -> PyResult<ClientOptions> {
    let mut options = ClientOptions::new(url);
    if let Some(token) = token {
        options.token = Some(Secret::new(token));
    }
    if let Some(ttl) = default_ttl {
        options.default_ttl = seconds(py, "default_ttl", ttl)?;
    }
    if let Some(value) = default_value {
        options.default_value = value;
    }
    Ok(tracking::track(options))
}

#[pymethods]
impl Client {
    /// Connects (blocking, with the GIL released). `token`: the backend's
    /// ACL token (else the URL or CONSUL_HTTP_TOKEN); `default_ttl`: the
    /// TTL in seconds of locks that give none (15); `default_value`: the
    /// holder value stored with leases (host name and pid).
    #[new]
    #[pyo3(signature = (url="memory://", *, token=None, default_ttl=None, default_value=None))]
    fn new(
        py: Python<'_>,
        url: &str,
        token: Option<String>,
        default_ttl: Option<f64>,
        default_value: Option<String>,
    ) -> PyResult<Self> {
        let options = options(py, url, token, default_ttl, default_value)?;
        let inner = bridge::wait(py, polylock::Client::from_options(options))?;
        Ok(Client { inner })
    }

    /// `Client(...)` as an awaitable, for asyncio.
    #[staticmethod]
    #[pyo3(signature = (url="memory://", *, token=None, default_ttl=None, default_value=None))]
    fn connect_async<'py>(
        py: Python<'py>,
        url: &str,
        token: Option<String>,
        default_ttl: Option<f64>,
        default_value: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = options(py, url, token, default_ttl, default_value)?;
        bridge::to_asyncio(py, polylock::Client::from_options(options), |py, inner| {
            Ok(Py::new(py, Client { inner })?.into_any())
        })
    }

    /// A handle for the lock `name`: `limit` 1 is a mutex, N a counting
    /// semaphore; `ttl` in seconds (renewed every third of it until
    /// released); `value` is stored with the lease; `auto_renew=False`
    /// leaves renewing to the caller (`Lease.renew()` within each TTL, or
    /// the lease is released and reported lost). Contacts nobody yet.
    #[pyo3(signature = (name, *, ttl=None, limit=1, value=None, auto_renew=true))]
    fn lock(
        &self,
        py: Python<'_>,
        name: &str,
        ttl: Option<f64>,
        limit: u32,
        value: Option<String>,
        auto_renew: bool,
    ) -> PyResult<Lock> {
        let mut options = LockOptions::semaphore(limit).auto_renew(auto_renew);
        if let Some(ttl) = ttl {
            options = options.ttl(seconds(py, "ttl", ttl)?);
        }
        if let Some(value) = value {
            options = options.value(value);
        }
        let lock = self.inner.lock(name, options).map_err(|e| to_py(py, e))?;
        Ok(Lock::new(lock))
    }

    /// The name registry `namespace` (a valid lock name) of this backend.
    fn registry(&self, py: Python<'_>, namespace: &str) -> PyResult<Registry> {
        let registry = self.inner.registry(namespace).map_err(|e| to_py(py, e))?;
        Ok(Registry::new(registry))
    }

    /// The URL scheme of the backend (`"memory"`, `"consul"`, `"mongodb"`, `"ldlm"`).
    #[getter]
    fn scheme(&self) -> &'static str {
        self.inner.scheme()
    }

    /// What the backend can do (fencing tokens, event stream, …).
    #[getter]
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().into()
    }

    fn __repr__(&self) -> String {
        format!("Client(scheme={:?})", self.inner.scheme())
    }
}

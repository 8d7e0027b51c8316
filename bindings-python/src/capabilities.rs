//! `polylock.Capabilities`: what the client's backend can do, as the core
//! declares it (`polylock::Capabilities`).

use pyo3::prelude::*;

/// What a backend can do. Read it from :attr:`Client.capabilities` to gate
/// behaviour on it rather than on the backend's name.
#[pyclass(frozen, get_all, module = "polylock")]
pub(crate) struct Capabilities {
    /// Leases carry fencing tokens that strictly increase per name.
    fencing: bool,
    /// A lost lease is noticed before the next renewal.
    loss_watch: bool,
    /// Waits are woken by the server, not by polling.
    change_notifications: bool,
    /// Limits above 1 (counting semaphores) work.
    semaphores: bool,
    /// One renewal keeps many leases (a Consul session).
    shared_renewal: bool,
    /// `watch` streams every client's acquisitions and releases.
    event_stream: bool,
    /// Operator views (status, list) and the registry's look-ups work.
    inspection: bool,
    /// The server waits for the lock on the client's behalf (LDLM).
    server_wait: bool,
    /// A lock nobody holds takes a new limit at once.
    idle_limit_resets: bool,
    /// A lease outlives the connection that took it (kept until its TTL).
    outlives_connection: bool,
}

impl From<polylock::Capabilities> for Capabilities {
    fn from(c: polylock::Capabilities) -> Self {
        Capabilities {
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

#[pymethods]
impl Capabilities {
    fn __repr__(&self) -> String {
        format!(
            "Capabilities(fencing={}, loss_watch={}, change_notifications={}, semaphores={}, shared_renewal={}, event_stream={}, inspection={}, server_wait={}, idle_limit_resets={}, outlives_connection={})",
            py_bool(self.fencing),
            py_bool(self.loss_watch),
            py_bool(self.change_notifications),
            py_bool(self.semaphores),
            py_bool(self.shared_renewal),
            py_bool(self.event_stream),
            py_bool(self.inspection),
            py_bool(self.server_wait),
            py_bool(self.idle_limit_resets),
            py_bool(self.outlives_connection),
        )
    }
}

fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

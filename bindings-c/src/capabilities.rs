//! `polylock_client_capabilities`: what a client's backend can do, as the
//! core declares it, so C programs gate on it rather than on URL schemes.

use crate::call;
use crate::client::{polylock_client, CLIENTS};
use crate::status::polylock_status;

/// What a backend can do; one flag per capability (see the README's
/// "The model" and each backend's section).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct polylock_capabilities {
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
    /// The lock event stream exists (not offered by the C ABI yet).
    pub event_stream: bool,
    /// Operator views and the registry's look-ups (`polylock_whereis`,
    /// `polylock_registry_list`) work.
    pub inspection: bool,
    /// The server waits for the lock on the client's behalf (LDLM).
    pub server_wait: bool,
    /// A lock nobody holds takes a new limit at once.
    pub idle_limit_resets: bool,
    /// A lease outlives the connection that took it (kept until its TTL).
    pub outlives_connection: bool,
}

impl From<polylock_core::Capabilities> for polylock_capabilities {
    fn from(c: polylock_core::Capabilities) -> Self {
        polylock_capabilities {
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

/// Writes what `client`'s backend can do to `*out`. Makes no call to the
/// backend.
///
/// # Safety
/// `out` is NULL or writable; any `client` pointer value is accepted.
#[no_mangle]
pub unsafe extern "C" fn polylock_client_capabilities(
    client: *const polylock_client,
    out: *mut polylock_capabilities,
) -> polylock_status {
    call::run(|| {
        call::require_out(out, "out")?;
        let capabilities = CLIENTS.get(client)?.client.capabilities();
        call::write_out(out, polylock_capabilities::from(capabilities), "out")
    })
}

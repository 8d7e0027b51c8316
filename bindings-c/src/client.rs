//! `polylock_client`: a connection to one backend, from a URL.

use std::ffi::c_char;

use crate::call::{self, Failure};
use crate::handles::Registry;
use crate::status::polylock_status;

/// A client: one backend connection (and, on Consul, one session renewing
/// all its leases). Opaque; create with `polylock_client_new`.
pub struct polylock_client {
    _opaque: [u8; 0],
}

/// What a client handle holds.
pub(crate) struct ClientHandle {
    pub(crate) client: polylock_core::blocking::Client,
}

pub(crate) static CLIENTS: Registry<ClientHandle> = Registry::new("client handle");

/// Connects to the backend named by `url` (`memory://`, `consul://host:port`,
/// `mongodb://…`, `postgres://…`; see the README) and writes the new client to `*out`.
///
/// `url` is borrowed for the call only. On failure `*out` is left unchanged.
/// Free the client with `polylock_client_free`. Blocks while connecting.
///
/// # Safety
/// `url` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_client_new(
    url: *const c_char,
    out: *mut *mut polylock_client,
) -> polylock_status {
    call::run(|| {
        call::require_out(out, "out")?;
        let url = call::text(url, "url")?;
        let client = polylock_core::blocking::Client::connect(url).map_err(Failure::from)?;
        let handle = CLIENTS.insert(ClientHandle { client })?;
        call::write_out(out, handle, "out")
    })
}

/// Frees a client. Lock handles made from it stay usable until they are
/// freed themselves (they keep the connection alive). NULL, or a client
/// freed already, gives `POLYLOCK_INVALID_HANDLE` and changes nothing.
///
/// # Safety
/// Any pointer value is accepted; only live handles are acted on.
#[no_mangle]
pub unsafe extern "C" fn polylock_client_free(client: *mut polylock_client) -> polylock_status {
    call::run(|| {
        CLIENTS.remove(client)?;
        Ok(())
    })
}

//! `polylock_client`: a connection to one backend, from a URL.

use std::collections::BTreeSet;
use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// The names this client registered (`polylock_register`) and has not
    /// unregistered, and whether the handle was freed.
    registered: Mutex<Registered>,
}

#[derive(Default)]
struct Registered {
    names: BTreeSet<String>,
    freed: bool,
    retained: bool,
}

pub(crate) static CLIENTS: Registry<ClientHandle> = Registry::new("client handle");

/// Clients freed while they held registrations. A registration keeps its
/// client alive until the end of the process (or until it is
/// unregistered): the core keeps it in a reference cycle (the client holds
/// the registration's lease, which holds the client), which no one can
/// reach once the handle is gone, so leak checkers (LeakSanitizer,
/// valgrind) reported it as leaked. Held here, it is reachable, as the
/// contract says it lives.
static RETAINED: Mutex<Vec<Arc<ClientHandle>>> = Mutex::new(Vec::new());

impl ClientHandle {
    fn registered(&self) -> MutexGuard<'_, Registered> {
        self.registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a registration of `name` (`NAMESPACE/NAME`) made by this
    /// client; retains the client if it was freed meanwhile.
    pub(crate) fn note_registered(self: &Arc<Self>, name: String) {
        let mut registered = self.registered();
        registered.names.insert(name);
        if registered.freed {
            self.retain(&mut registered);
        }
    }

    /// Notes that `name` is no longer this client's registration (after an
    /// unregister, whatever its outcome: the core forgets the name first).
    pub(crate) fn note_unregistered(&self, name: &str) {
        self.registered().names.remove(name);
    }

    /// The handle was freed: retain the client if it holds registrations.
    fn freed(self: &Arc<Self>) {
        let mut registered = self.registered();
        registered.freed = true;
        if !registered.names.is_empty() {
            self.retain(&mut registered);
        }
    }

    fn retain(self: &Arc<Self>, registered: &mut Registered) {
        if !registered.retained {
            registered.retained = true;
            RETAINED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(self.clone());
        }
    }
}

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
        let handle = CLIENTS.insert(ClientHandle {
            client,
            registered: Mutex::default(),
        })?;
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
        // A client holding registrations lives on (see `RETAINED`).
        CLIENTS.remove(client)?.freed();
        Ok(())
    })
}

//! The name registry from C: `polylock_register`, `polylock_whereis`,
//! `polylock_unregister`, `polylock_registry_list`. A registration belongs
//! to the client's connection and is renewed until `polylock_unregister` or
//! the end of the process.

use std::ffi::c_char;
use std::sync::Arc;

use crate::call::{self, Failure};
use crate::client::{polylock_client, ClientHandle, CLIENTS};
use crate::status::polylock_status;

/// The registry `namespace` of `client`.
///
/// # Safety
/// `namespace` is NULL or a NUL-terminated string.
unsafe fn registry(
    client: *const polylock_client,
    namespace: *const c_char,
) -> Result<polylock_core::Registry, Failure> {
    Ok(registry_of(client, namespace)?.1)
}

/// The client handle and its registry `namespace`.
///
/// # Safety
/// `namespace` is NULL or a NUL-terminated string.
unsafe fn registry_of(
    client: *const polylock_client,
    namespace: *const c_char,
) -> Result<(Arc<ClientHandle>, polylock_core::Registry), Failure> {
    let client = CLIENTS.get(client)?;
    let namespace = call::text(namespace, "namespace")?;
    let registry = client.client.as_async().registry(namespace)?;
    Ok((client, registry))
}

/// The full name a registration of `name` holds (`NAMESPACE/NAME`).
fn registration(registry: &polylock_core::Registry, name: &str) -> String {
    format!("{}/{name}", registry.namespace())
}

/// Runs a registry call to completion on this thread.
fn wait<T: Send + 'static>(
    fut: impl std::future::Future<Output = polylock_core::Result<T>> + Send + 'static,
) -> Result<T, Failure> {
    Ok(polylock_core::blocking::block_on(fut)??)
}

/// Registers `name` in `namespace` with `value`, held while the process
/// lives (or until `polylock_unregister`). `POLYLOCK_CONFLICT` when the name
/// is registered already. Blocks for one backend round trip or two.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn polylock_register(
    client: *const polylock_client,
    namespace: *const c_char,
    name: *const c_char,
    value: *const c_char,
) -> polylock_status {
    call::run(|| {
        let (handle, registry) = registry_of(client, namespace)?;
        let name = call::text(name, "name")?.to_string();
        let value = call::text(value, "value")?.to_string();
        let full = registration(&registry, &name);
        wait(async move { registry.register(&name, &value).await })?;
        handle.note_registered(full);
        Ok(())
    })
}

/// Looks `name` up in `namespace`: `*value_out` is its value, caller-owned
/// (free it with `polylock_string_free`), or NULL when it is not registered.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `value_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_whereis(
    client: *const polylock_client,
    namespace: *const c_char,
    name: *const c_char,
    value_out: *mut *mut c_char,
) -> polylock_status {
    call::run(|| {
        call::require_out(value_out, "value_out")?;
        let registry = registry(client, namespace)?;
        let name = call::text(name, "name")?.to_string();
        let value = wait(async move { registry.whereis(&name).await })?;
        let value = value.map_or(std::ptr::null_mut(), |v| call::owned_string(&v));
        call::write_out(value_out, value, "value_out")
    })
}

/// Gives up this client's registration of `name`; `POLYLOCK_NOT_HELD` when
/// this client did not register it.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn polylock_unregister(
    client: *const polylock_client,
    namespace: *const c_char,
    name: *const c_char,
) -> polylock_status {
    call::run(|| {
        let (handle, registry) = registry_of(client, namespace)?;
        let name = call::text(name, "name")?.to_string();
        let full = registration(&registry, &name);
        let outcome = wait(async move { registry.unregister(&name).await });
        handle.note_unregistered(&full);
        outcome
    })
}

/// Every registered name of `namespace` as a JSON object `{"name": "value",
/// …}` in `*json_out`, caller-owned (free it with `polylock_string_free`).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `json_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn polylock_registry_list(
    client: *const polylock_client,
    namespace: *const c_char,
    json_out: *mut *mut c_char,
) -> polylock_status {
    call::run(|| {
        call::require_out(json_out, "json_out")?;
        let registry = registry(client, namespace)?;
        let entries = wait(async move { registry.list().await })?;
        let object: serde_json::Map<String, serde_json::Value> = entries
            .into_iter()
            .map(|(name, value)| (name, serde_json::Value::String(value)))
            .collect();
        let json = serde_json::Value::Object(object).to_string();
        call::write_out(json_out, call::owned_string(&json), "json_out")
    })
}

//! Python bindings for polylock: the `polylock._native` extension module
//! behind the `polylock` package (`python/polylock/`).
//!
//! `Client`, `Lock` and `Lease` are native classes; every blocking call
//! releases the GIL ([`bridge::wait`]) and each has an `*_async` twin that
//! returns an awaitable ([`bridge::to_asyncio`], [`acquire`]), which the
//! package's `AsyncClient` wraps. A `Lock` is a [`polylock::LeaseSlot`].
//! No polylock runtime worker ever waits for the GIL: results reach Python
//! through one delivery thread ([`delivery`]), lost callbacks through
//! polylock's notifier thread. Errors become the classes of
//! `polylock.errors`.

mod acquire;
mod bridge;
mod capabilities;
mod client;
mod delivery;
mod errors;
mod lease;
mod lock;
mod lost;
mod registry;
mod tracking;

use pyo3::prelude::*;

/// The native module behind the `polylock` Python package.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<capabilities::Capabilities>()?;
    module.add_class::<client::Client>()?;
    module.add_class::<lock::Lock>()?;
    module.add_class::<lease::Lease>()?;
    module.add_class::<lost::LostEvent>()?;
    module.add_class::<registry::Registry>()?;
    module.add_class::<registry::RegistryEvent>()?;
    module.add_class::<registry::RegistryEvents>()?;
    module.add_function(wrap_pyfunction!(bridge::_shutdown, module)?)?;
    module.add_function(wrap_pyfunction!(tracking::_track_clients, module)?)?;
    module.add_function(wrap_pyfunction!(tracking::_live_clients, module)?)?;
    Ok(())
}

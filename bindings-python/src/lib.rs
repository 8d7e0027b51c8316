//! Python bindings for polylock: the `polylock._native` extension module.
//! The Python API (`Client`, `AsyncClient`, exceptions) is filled in by the
//! Python-package issue; this crate builds and links today.

use pyo3::prelude::*;

/// The native module behind the `polylock` Python package.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

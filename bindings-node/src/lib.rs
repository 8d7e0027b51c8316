//! Node.js bindings for polylock. The napi-rs module is filled in by the
//! Node-package issue; this crate builds and links today.

/// The version of the polylock core these bindings wrap.
pub fn core_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

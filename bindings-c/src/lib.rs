//! The C ABI of polylock. The full `polylock_` API, its header and the C,
//! Ruby and Go consumers are filled in by the C-ABI issue; this crate builds
//! and links today.

use std::ffi::c_char;

/// The library version as a static NUL-terminated string; never free it.
#[no_mangle]
pub extern "C" fn polylock_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

//! Writes `polylock.pc` (pkg-config) next to the built library, so that
//! `PKG_CONFIG_PATH=target/release pkg-config --cflags --libs polylock`
//! works right after `cargo build -p polylock-c --release`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let Some(lib_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let include_dir = Path::new(&manifest).join("../include");
    let include_dir = include_dir.canonicalize().unwrap_or(include_dir);
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let pc = format!(
        "libdir={lib}\nincludedir={include}\n\n\
         Name: polylock\n\
         Description: Distributed locks and semaphores over Consul, MongoDB and memory (C ABI)\n\
         Version: {version}\n\
         Libs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lpolylock\n\
         Libs.private: -lpthread -ldl -lm\n\
         Cflags: -I${{includedir}}\n",
        lib = lib_dir.display(),
        include = include_dir.display(),
    );
    // Best effort: a read-only target directory only loses the .pc file.
    let _ = std::fs::write(lib_dir.join("polylock.pc"), pc);
}

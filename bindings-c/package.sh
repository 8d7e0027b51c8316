#!/usr/bin/env bash
# Builds the C package: polylock-VERSION-TRIPLE.tar.gz in
# $POLYLOCK_PACKAGE_DIR (default: packages/ in cargo's target directory),
# holding
#   bin/polylock                 the CLI
#   include/polylock.h           the committed header
#   lib/libpolylock.so, .a       the C ABI, shared and static (stripped)
#   lib/pkgconfig/polylock.pc    relocatable (prefix from ${pcfiledir})
# Unpack it anywhere (or into /usr/local) and point PKG_CONFIG_PATH at
# lib/pkgconfig. The Go module and the Ruby gem are built on this library.
# Prints the tarball's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build -q -p polylock-c -p polylock-cli --release --locked >&2
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out=${POLYLOCK_PACKAGE_DIR:-$target_dir/packages}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
triple="$(uname -m)-linux-gnu"
name="polylock-$version-$triple"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/bin" "$dir/include" "$dir/lib/pkgconfig" "$out"
release="$target_dir/release"
install -m 755 "$release/polylock" "$dir/bin/polylock"
install -m 644 include/polylock.h "$dir/include/polylock.h"
install -m 755 "$release/libpolylock.so" "$dir/lib/libpolylock.so"
install -m 644 "$release/libpolylock.a" "$dir/lib/libpolylock.a"
strip --strip-unneeded "$dir/bin/polylock" "$dir/lib/libpolylock.so"
strip --strip-debug "$dir/lib/libpolylock.a"
cat >"$dir/lib/pkgconfig/polylock.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: polylock
Description: Distributed locks and semaphores with fencing tokens (C ABI)
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lpolylock
Libs.private: -lpthread -ldl -lm
Cflags: -I\${includedir}
PC
# Written beside, then renamed: a reader never sees a half-written tarball.
tar -C "$stage" -czf "$out/.$name.tar.gz.$$" "$name"
mv -f "$out/.$name.tar.gz.$$" "$out/$name.tar.gz"
echo "$out/$name.tar.gz"

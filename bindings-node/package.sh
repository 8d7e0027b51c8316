#!/usr/bin/env bash
# Builds the Node package: polylock-VERSION.tgz (npm pack) in
# $POLYLOCK_PACKAGE_DIR (default: packages/ in cargo's target directory),
# holding index.js, index.d.ts, the loader (native.js, platform.js), the
# release addon prebuilt for this machine (polylock.linux-x64-gnu.node on
# x86-64 glibc Linux) and, for the install script's source build on other
# platforms, the crate tree in rust/ (npm pack's prepack step,
# scripts/package.js, builds and stages both; its postpack removes them).
# Install it with `npm install /path/to/polylock-VERSION.tgz`: where the
# prebuilt addon loads, no Rust toolchain is needed.
# Prints the tarball's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out=${POLYLOCK_PACKAGE_DIR:-$target_dir/packages}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$out"
version=$(node -p 'require(process.argv[1]).version' "$root/bindings-node/package.json")
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
(cd "$root/bindings-node" && npm pack --pack-destination "$out" >&2)
tarball="$out/polylock-$version.tgz"
[ -f "$tarball" ] || { echo "package.sh: npm pack wrote no $tarball" >&2; exit 1; }
echo "$tarball"

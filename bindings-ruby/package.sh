#!/usr/bin/env bash
# Builds the polylock gem: the platform gem polylock-VERSION-x86_64-linux.gem
# carrying the C library (lib/polylock/native/libpolylock.so from the C
# package that bindings-c/package.sh builds, release), in
# $POLYLOCK_PACKAGE_DIR (default: packages/ in cargo's target directory),
# next to that C package. Offline: `gem build` fetches nothing.
# Prints the gem's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out=${POLYLOCK_PACKAGE_DIR:-$target_dir/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)
tarball=$(POLYLOCK_PACKAGE_DIR="$out" bash "$root/bindings-c/package.sh")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/c" "$stage/gem"
tar -C "$stage/c" --strip-components=1 -xzf "$tarball"
cp -R "$root/bindings-ruby/polylock.gemspec" "$root/bindings-ruby/lib" "$stage/gem/"
mkdir -p "$stage/gem/lib/polylock/native"
install -m 755 "$stage/c/lib/libpolylock.so" "$stage/gem/lib/polylock/native/libpolylock.so"
(cd "$stage/gem" && POLYLOCK_WORKSPACE_TOML="$root/Cargo.toml" gem build --quiet polylock.gemspec >&2)
gem=$(cd "$stage/gem" && ls polylock-*.gem)
install -m 644 "$stage/gem/$gem" "$out/$gem"
echo "$out/$gem"

#!/usr/bin/env bash
# Tests the Go module against the INSTALLED C package, the way a user has
# it: builds the package with bindings-c/package.sh (cargo, outside the
# test), unpacks it into a scratch prefix, then runs go vet and
# go test -race on both packages (polylock and polylock/client) through
# tests/support/without-rust.sh (no cargo on PATH), with
# PKG_CONFIG_PATH=PREFIX/lib/pkgconfig: cgo links that prefix's
# libpolylock (polylock.pc carries an rpath) and POLYLOCK_CLI is its
# bin/polylock (the LDLM tests revoke leases with it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(bash "$root/bindings-c/package.sh")
prefix=$(mktemp -d "${TMPDIR:-/tmp}/polylock-go-prefix.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
tar -xzf "$tarball" -C "$prefix" --strip-components=1
echo "go: testing against $(basename "$tarball") unpacked in $prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export POLYLOCK_CLI="$prefix/bin/polylock"
export POLYLOCK_CUT_PROXY="$root/tests/support/cut_proxy.py"
export CGO_ENABLED=1 GOFLAGS=-mod=mod
# Go's build cache keeps a cgo package's link flags without keying them on
# pkg-config's answer, so a package built earlier against another
# libpolylock would be linked as it was: naming this prefix in the CGO_*
# variables (which are keyed) makes go build it against this one.
export CGO_CFLAGS="-g -O2 -I$prefix/include" CGO_LDFLAGS="-Wl,-rpath,$prefix/lib"
cd "$root/bindings-go"
"$root/tests/support/without-rust.sh" go vet ./...
# The test binaries load the unpacked library, no other.
"$root/tests/support/without-rust.sh" go test -race -c -o "$prefix/client.test" ./client
loaded=$(ldd "$prefix/client.test" | awk '$1 == "libpolylock.so" { print $3 }')
if [ "$(readlink -f "$loaded")" != "$(readlink -f "$prefix/lib/libpolylock.so")" ]; then
  echo "go: the tests would load libpolylock from ${loaded:-nowhere}, not $prefix/lib" >&2
  exit 1
fi
echo "go: the tests load $loaded"
exec "$root/tests/support/without-rust.sh" go test -count=1 -race -v ./...

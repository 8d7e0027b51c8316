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
cd "$root/bindings-go"
"$root/tests/support/without-rust.sh" go vet ./...
exec "$root/tests/support/without-rust.sh" go test -count=1 -race -v ./...

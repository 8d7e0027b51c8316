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
# shellcheck source=lib-env.sh
source "$(dirname "$0")/lib-env.sh"
echo "go: testing against $(basename "$tarball") unpacked in $prefix"
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
# POLYLOCK_GO_TESTS: a -run pattern, to run only the tests it matches.
exec "$root/tests/support/without-rust.sh" go test -count=1 -race -v ${POLYLOCK_GO_TESTS:+"-run=$POLYLOCK_GO_TESTS"} ./...

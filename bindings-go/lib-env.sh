# Sourced by run-tests.sh and fuzz.sh (bash, set -euo pipefail): the Go
# module built against the INSTALLED C package, the way a user has it.
# Builds the package with bindings-c/package.sh (cargo, outside the tests),
# unpacks it into a scratch prefix (removed on exit), and exports what cgo
# and the tests need: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig (cgo links that
# prefix's libpolylock; polylock.pc carries an rpath), POLYLOCK_CLI (its
# bin/polylock), POLYLOCK_CUT_PROXY, CGO_*. Sets root, tarball and prefix.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tarball=$(bash "$root/bindings-c/package.sh")
prefix=$(mktemp -d "${TMPDIR:-/tmp}/polylock-go-prefix.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
tar -xzf "$tarball" -C "$prefix" --strip-components=1
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export POLYLOCK_CLI="$prefix/bin/polylock"
export POLYLOCK_CUT_PROXY="$root/tests/support/cut_proxy.py"
export CGO_ENABLED=1 GOFLAGS=-mod=mod
# Go's build cache keeps a cgo package's link flags without keying them on
# pkg-config's answer, so a package built earlier against another
# libpolylock would be linked as it was: naming this prefix in the CGO_*
# variables (which are keyed) makes go build it against this one.
export CGO_CFLAGS="-g -O2 -I$prefix/include" CGO_LDFLAGS="-Wl,-rpath,$prefix/lib"

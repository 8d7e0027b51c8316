#!/usr/bin/env bash
# Runs the Go example's tests (cgo, with the race detector) against the C
# library in ${CARGO_TARGET_DIR:-target}/${POLYLOCK_C_PROFILE:-debug}, which
# it builds with the polylock CLI (POLYLOCK_CLI: the LDLM tests revoke
# leases with it); pkg-config finds the library through the polylock.pc
# written next to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${POLYLOCK_C_PROFILE:-debug}
flags=(--locked)
[ "$profile" = release ] && flags+=(--release)
(cd "$root" && cargo build -p polylock-c -p polylock-cli "${flags[@]}")
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export PKG_CONFIG_PATH="$target_dir/$profile${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export POLYLOCK_CLI="$target_dir/$profile/polylock"
export POLYLOCK_CUT_PROXY="$root/tests/support/cut_proxy.py"
export CGO_ENABLED=1 GOFLAGS=-mod=mod
cd "$root/examples/go"
go vet ./...
exec go test -count=1 -race -v ./...

#!/usr/bin/env bash
# Runs the Go example's tests (cgo, with the race detector) against the C
# library in target/${POLYLOCK_C_PROFILE:-debug}, which it builds; pkg-config
# finds it through the polylock.pc written next to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${POLYLOCK_C_PROFILE:-debug}
flags=(--locked)
[ "$profile" = release ] && flags+=(--release)
(cd "$root" && cargo build -p polylock-c "${flags[@]}")
export PKG_CONFIG_PATH="$root/target/$profile${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export CGO_ENABLED=1 GOFLAGS=-mod=mod
cd "$root/examples/go"
go vet ./...
exec go test -count=1 -race -v ./...

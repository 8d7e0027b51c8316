#!/usr/bin/env bash
# Runs the Ruby example's tests (Debian ruby + ruby-ffi + minitest) against
# the C library in ${CARGO_TARGET_DIR:-target}/${POLYLOCK_C_PROFILE:-debug},
# which it builds, with the polylock CLI (POLYLOCK_CLI: the LDLM tests
# revoke leases with it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${POLYLOCK_C_PROFILE:-debug}
flags=(--locked)
[ "$profile" = release ] && flags+=(--release)
(cd "$root" && cargo build -p polylock-c -p polylock-cli "${flags[@]}")
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export POLYLOCK_LIB="$target_dir/$profile/libpolylock.so"
export POLYLOCK_CLI="$target_dir/$profile/polylock"
cd "$root/examples/ruby"
exec ruby -w -Ilib -Itest -e 'Dir["test/test_*.rb"].sort.each { |f| require_relative f }'

#!/usr/bin/env bash
# Runs the Ruby example's tests (Debian ruby + ruby-ffi + minitest) against
# the C library in target/${POLYLOCK_C_PROFILE:-debug}, which it builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${POLYLOCK_C_PROFILE:-debug}
flags=(--locked)
[ "$profile" = release ] && flags+=(--release)
(cd "$root" && cargo build -p polylock-c "${flags[@]}")
export POLYLOCK_LIB="$root/target/$profile/libpolylock.so"
cd "$root/examples/ruby"
exec ruby -w -Ilib -Itest -e 'Dir["test/test_*.rb"].sort.each { |f| require_relative f }'

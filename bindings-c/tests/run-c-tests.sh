#!/usr/bin/env bash
# Builds the C library, compiles tests/c/test_polylock.c against it (shared,
# through pkg-config; and static), and runs it under valgrind against
# memory:// and every real server whose URL is set: POLYLOCK_TEST_CONSUL_URL,
# POLYLOCK_TEST_FERRETDB_URL (tests/with-servers.sh sets them). With CI=true
# a missing Consul URL fails. POLYLOCK_C_PROFILE=release builds release.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
profile=${POLYLOCK_C_PROFILE:-debug}
cargo_flags=(--locked)
[ "$profile" = release ] && cargo_flags+=(--release)
cargo build -p polylock-c "${cargo_flags[@]}"
lib_dir="$root/target/$profile"

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
src=bindings-c/tests/c/test_polylock.c
warnings=(-std=c11 -Wall -Wextra -Werror -pthread)
# Shared library, with the flags pkg-config gives for polylock.pc.
# shellcheck disable=SC2046
cc "${warnings[@]}" -g "$src" -o "$build/test_shared" \
  $(PKG_CONFIG_PATH="$lib_dir" pkg-config --cflags --libs polylock)
# Static library: nothing to find at run time.
cc "${warnings[@]}" "$src" -o "$build/test_static" -Iinclude "$lib_dir/libpolylock.a" \
  -lpthread -ldl -lm

urls=(memory://)
if [ -n "${POLYLOCK_TEST_CONSUL_URL:-}" ]; then
  urls+=("$POLYLOCK_TEST_CONSUL_URL")
elif [ "${CI:-}" = true ]; then
  echo "run-c-tests: POLYLOCK_TEST_CONSUL_URL is not set" >&2
  exit 1
fi
[ -n "${POLYLOCK_TEST_FERRETDB_URL:-}" ] && urls+=("$POLYLOCK_TEST_FERRETDB_URL")

"$build/test_static" memory://
for url in "${urls[@]}"; do
  # Errors (invalid reads and writes, uses of uninitialised memory, definite
  # leaks) fail the run; memory still reachable from polylock's runtime
  # threads at exit is not a leak.
  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$build/test_shared" "$url"
done

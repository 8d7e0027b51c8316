#!/usr/bin/env bash
# Builds the C library (and the polylock CLI, which the test program uses to
# revoke LDLM leases), compiles tests/c/test_polylock.c against it (shared,
# through pkg-config; and static), and runs it under valgrind against
# memory:// and every real server whose URL is set: POLYLOCK_TEST_CONSUL_URL,
# POLYLOCK_TEST_FERRETDB_URL, POLYLOCK_TEST_POSTGRES_URL, POLYLOCK_TEST_LDLM_URL (tests/with-servers.sh
# sets them; on the LDLM run the program also checks the password and mTLS
# servers from POLYLOCK_TEST_LDLM_PASSWORD_URL, POLYLOCK_TEST_LDLM_PASSWORD,
# POLYLOCK_TEST_LDLM_MTLS_URL and POLYLOCK_TEST_LDLM_MTLS_CERTS). Then the
# bad-input matrix, tests/c/test_bad_input.c, runs under valgrind on
# memory:// (appending its records to $POLYLOCK_BAD_INPUT_RECORDS when set;
# see tests/bad-input/); POLYLOCK_C_ONLY=bad-input runs just that program.
#
# With CI=true a missing Consul URL fails, and so does a missing LDLM
# variable, unless POLYLOCK_TEST_LDLM_SKIPPED=1 (no LDLM server binary):
# then LDLM is skipped with one line, in CI too. POLYLOCK_C_PROFILE=release
# builds release; the library is looked for in $CARGO_TARGET_DIR (default
# target/).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
profile=${POLYLOCK_C_PROFILE:-debug}
cargo_flags=(--locked)
[ "$profile" = release ] && cargo_flags+=(--release)
cargo build -p polylock-c -p polylock-cli "${cargo_flags[@]}"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
lib_dir="$target_dir/$profile"
export POLYLOCK_CLI="$lib_dir/polylock"
# The Consul run cuts its connection through this proxy (a release that
# fails transiently, then is retried).
export POLYLOCK_CUT_PROXY="$root/tests/support/cut_proxy.py"

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
# shellcheck disable=SC2046
cc "${warnings[@]}" -g bindings-c/tests/c/test_bad_input.c -o "$build/test_bad_input" \
  $(PKG_CONFIG_PATH="$lib_dir" pkg-config --cflags --libs polylock)

# Runs a test program under valgrind (label, command...).
under_valgrind() {
  local label=$1
  shift
  # Errors (invalid reads and writes, uses of uninitialised memory, definite
  # and indirect leaks) fail the run; memory still reachable from polylock's
  # runtime threads at exit is not a leak. valgrind.supp silences the two
  # reports valgrind makes about ring's AES-GCM assembly (TLS, ldlms://);
  # deep stacks so that its frames are matched. valgrind's own output goes to
  # a file: its ERROR SUMMARY and leak totals are shown, and all of it when
  # the run fails.
  local log="$build/valgrind.log" status=0 summary lost
  valgrind --log-file="$log" --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --num-callers=40 \
    --suppressions=bindings-c/tests/valgrind.supp "$@" || status=$?
  summary=$(grep -m1 -o 'ERROR SUMMARY: .*' "$log" || echo "no ERROR SUMMARY")
  lost=$(grep -o -E '(definitely|indirectly) lost: [0-9,]+ bytes' "$log" | paste -sd ';' - || true)
  echo "valgrind on $label: $summary; ${lost:-no leaks found}"
  if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    echo "run-c-tests: $label failed (exit status $status)" >&2
    exit "$status"
  fi
}

if [ "${POLYLOCK_C_ONLY:-}" = bad-input ]; then
  under_valgrind "bad input on memory://" "$build/test_bad_input"
  exit 0
fi

urls=(memory://)
if [ -n "${POLYLOCK_TEST_CONSUL_URL:-}" ]; then
  urls+=("$POLYLOCK_TEST_CONSUL_URL")
elif [ "${CI:-}" = true ]; then
  echo "run-c-tests: POLYLOCK_TEST_CONSUL_URL is not set" >&2
  exit 1
fi
[ -n "${POLYLOCK_TEST_FERRETDB_URL:-}" ] && urls+=("$POLYLOCK_TEST_FERRETDB_URL")
if [ -n "${POLYLOCK_TEST_POSTGRES_URL:-}" ]; then
  urls+=("$POLYLOCK_TEST_POSTGRES_URL")
elif [ "${CI:-}" = true ]; then
  echo "run-c-tests: POLYLOCK_TEST_POSTGRES_URL is not set" >&2
  exit 1
fi
if [ "${POLYLOCK_TEST_LDLM_SKIPPED:-}" = 1 ]; then
  echo "# ldlm: skipped (POLYLOCK_TEST_LDLM_SKIPPED=1: no LDLM server binary)"
else
  ldlm_vars=(POLYLOCK_TEST_LDLM_URL POLYLOCK_TEST_LDLM_PASSWORD_URL POLYLOCK_TEST_LDLM_PASSWORD
    POLYLOCK_TEST_LDLM_MTLS_URL POLYLOCK_TEST_LDLM_MTLS_CERTS)
  if [ "${CI:-}" = true ]; then
    for var in "${ldlm_vars[@]}"; do
      if [ -z "${!var:-}" ]; then
        echo "run-c-tests: $var is not set (and POLYLOCK_TEST_LDLM_SKIPPED is not 1)" >&2
        exit 1
      fi
    done
  fi
  if [ -n "${POLYLOCK_TEST_LDLM_URL:-}" ]; then
    urls+=("$POLYLOCK_TEST_LDLM_URL")
  else
    echo "# ldlm: skipped (POLYLOCK_TEST_LDLM_URL is not set)"
  fi
fi

"$build/test_static" memory://
for url in "${urls[@]}"; do
  under_valgrind "${url%%\?*}" "$build/test_shared" "$url"
done
under_valgrind "bad input on memory://" "$build/test_bad_input"

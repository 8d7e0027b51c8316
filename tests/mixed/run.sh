#!/usr/bin/env bash
# Mixed clients: Rust, Python, Node and C contenders, each its own process,
# take one lock at the same time on every real server whose URL is set
# (POLYLOCK_TEST_CONSUL_URL, POLYLOCK_TEST_FERRETDB_URL,
# POLYLOCK_TEST_LDLM_URL; tests/with-servers.sh sets them), and
# tests/mixed/check.py judges the shared log. On LDLM a fifth contender
# joins: py-ldlm, the LDLM project's own Python client.
#
# Each hold is logged with the fencing token (none on LDLM) and the
# contender's CLOCK_MONOTONIC readings at its start and end; each hold lasts
# POLYLOCK_MIXED_HOLD_MS (default 20) milliseconds, the workload. Consul and
# MongoDB are judged through a fenced store and by time, LDLM (no fencing
# tokens) by time: no two holds may overlap. First a clock probe runs each
# language once, one after another, and checks their readings rise, so they
# read one clock.
#
# Builds what it needs in cargo's target directory ($CARGO_TARGET_DIR or
# target/): the Rust contender (the `mixed-contend` example of polylock-cli),
# the Python package (bindings-python/install.sh, whose venv also gets
# py-ldlm when LDLM runs), the Node addon (npm run build) and the C library.
# With CI=true a missing Consul URL fails, and so does a missing LDLM URL
# unless POLYLOCK_TEST_LDLM_SKIPPED=1 (no LDLM server binary: LDLM skips).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rounds=${POLYLOCK_MIXED_ROUNDS:-10}
hold_ms=${POLYLOCK_MIXED_HOLD_MS:-20}
target=${CARGO_TARGET_DIR:-$root/target}
export POLYLOCK_NODE_PROFILE=${POLYLOCK_NODE_PROFILE:-debug}
py_ldlm_version=1.1.3

# The backends to run, as "BACKEND JUDGE URL".
runs=()
if [ -n "${POLYLOCK_TEST_CONSUL_URL:-}" ]; then
  runs+=("consul fenced $POLYLOCK_TEST_CONSUL_URL")
elif [ "${CI:-}" = true ]; then
  echo "tests/mixed: POLYLOCK_TEST_CONSUL_URL is not set" >&2
  exit 1
fi
[ -n "${POLYLOCK_TEST_FERRETDB_URL:-}" ] && runs+=("ferretdb fenced $POLYLOCK_TEST_FERRETDB_URL")
if [ -n "${POLYLOCK_TEST_POSTGRES_URL:-}" ]; then
  runs+=("postgres fenced $POLYLOCK_TEST_POSTGRES_URL")
elif [ "${CI:-}" = true ]; then
  echo "tests/mixed: POLYLOCK_TEST_POSTGRES_URL is not set" >&2
  exit 1
fi
if [ "${POLYLOCK_TEST_LDLM_SKIPPED:-}" = 1 ]; then
  echo "tests/mixed: ldlm skipped: no LDLM server binary (see README \"LDLM\")"
elif [ -n "${POLYLOCK_TEST_LDLM_URL:-}" ]; then
  runs+=("ldlm time $POLYLOCK_TEST_LDLM_URL")
elif [ "${CI:-}" = true ]; then
  echo "tests/mixed: POLYLOCK_TEST_LDLM_URL is not set (nor POLYLOCK_TEST_LDLM_SKIPPED=1)" >&2
  exit 1
else
  echo "tests/mixed: ldlm skipped: POLYLOCK_TEST_LDLM_URL is not set (tests/with-servers.sh sets it)"
fi

cargo build -q --locked -p polylock-cli --example mixed-contend
cargo build -q --locked -p polylock-c
python=$(bash bindings-python/install.sh)
case " ${runs[*]:-} " in
  *" ldlm time "*)
    "$python" -m pip install -q --disable-pip-version-check "py-ldlm==$py_ldlm_version" >&2
    ;;
esac
[ -d bindings-node/node_modules ] || (cd bindings-node && npm install --no-audit --no-fund)
(cd bindings-node && npm run build >/dev/null)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -std=c11 -Wall -Wextra -Werror -Iinclude tests/mixed/contend.c -o "$work/contend-c" \
  "$target/debug/libpolylock.a" -lpthread -ldl -lm
rust_contender="$target/debug/examples/mixed-contend"

# set_contender LANG: LANG's contender's command line (its arguments follow)
# in the array `contender`.
set_contender() {
  case "$1" in
    rust) contender=("$rust_contender") ;;
    python) contender=("$python" tests/mixed/contend.py) ;;
    node) contender=(node tests/mixed/contend.js) ;;
    c) contender=("$work/contend-c") ;;
    py-ldlm) contender=("$python" tests/mixed/contend_ldlm.py) ;;
    *) echo "tests/mixed: no contender in $1" >&2; exit 1 ;;
  esac
}

status=0
# The clock probe: one process per language, one after another, C first
# and last.
probes="$work/clocks"
for lang in c rust python node py-ldlm c; do
  set_contender "$lang"
  timeout 60 "${contender[@]}" clock >>"$probes" || status=1
done
python3 tests/mixed/check.py clocks "$probes" || status=1

for run in "${runs[@]}"; do
  read -r backend judge url <<<"$run"
  langs=(rust python node c)
  extra=()
  if [ "$backend" = ldlm ]; then
    langs+=(py-ldlm)
    [ -n "${POLYLOCK_TEST_LDLM_LOG:-}" ] && extra=(--server-log "$POLYLOCK_TEST_LDLM_LOG")
  fi
  name="mixed/$(date +%s%N)-$$"
  log="$work/holds-$backend.log"
  : >"$log"
  pids=()
  for lang in "${langs[@]}"; do
    set_contender "$lang"
    timeout 600 "${contender[@]}" "$url" "$name" "$rounds" "$log" "$hold_ms" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  echo "tests/mixed: $backend"
  python3 tests/mixed/check.py holds "$log" "$rounds" "$backend" "$judge" "${langs[@]}" \
    ${extra[@]+"${extra[@]}"} --name "$name" || status=1
done
exit "$status"

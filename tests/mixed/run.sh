#!/usr/bin/env bash
# The mixed-client fault suite: contenders in Rust, Python, Node, C, Go and
# Ruby, each its own process, take the same names (three mutexes and a
# semaphore of 2) on every backend while faults are injected at moments
# drawn from a seeded schedule, until GRANTS grants were judged per backend.
#
#   tests/mixed/run.sh [--grants N] [--seed S] [--backends LIST]
#
# --grants: grants per backend (default $POLYLOCK_MIXED_GRANTS or 1000, as
# CI runs it; the long mode is --grants 10000). --seed: the fault
# schedule's and contenders' seed (default random; printed on every summary
# line, so a run can be repeated). --backends: comma-separated subset of
# memory,consul,ferretdb,mongodb,postgres,ldlm (default: every one whose
# server tests/with-servers.sh started; mongodb only with
# POLYLOCK_TEST_MONGODB_URL, a real MongoDB).
#
# Run inside tests/with-servers.sh: the servers are the fault suite's
# (POLYLOCK_TEST_FAULTS_DIR): Consul's three-server cluster, FerretDB,
# PostgreSQL and LDLM, which the faults restart and kill. memory:// is
# in-process only: there one Rust process runs six contending threads and a
# thread that force-releases names (its faults).
#
# Every contender (tests/mixed/contend.*, built by tests/mixed/contenders.sh)
# appends to one history per backend, one line per finished operation:
#
#   OP LANG PID ID NAME TOKEN T0 T1 RESULT
#
# OP acquire (RESULT ok, timeout, error:KIND), write (to the fenced store:
# ok, stale, error), release (ok, lost, error:KIND), lost (the lost
# callback), force (memory's forced release), done; grants.py adds fault
# and killed lines. ID names the grant (LANG-PID-SEQ), TOKEN is its fencing
# token (- on LDLM), T0 and T1 are CLOCK_MONOTONIC nanoseconds before and
# after the call (the clock probe below checks every language reads that
# one clock). tests/mixed/grants.py runs one backend (faults, fenced store;
# its header lists the faults) and has each history judged twice:
# tests/mixed/check.py (fenced store and time) and Porcupine
# (tests/mixed/porcupine: a fenced lock / semaphore model). Both judges'
# own tests run first: a broken history (two overlapping grants) must fail
# both.
#
# The backends run side by side, POLYLOCK_MIXED_JOBS at a time (default
# 2; each has its own servers). Prints per backend "mixed: BACKEND: grants
# G (...), faults F (...),
# writes accepted A, stale writes rejected S, losses reported L, seed X,
# violations V" and "porcupine: BACKEND: ... violations V, unknown U";
# a failing backend's history and Porcupine's visualisation are kept in
# $POLYLOCK_MIXED_REPORT_DIR (default target/mixed-report/). With CI=true a
# missing server fails, and so does LDLM unless POLYLOCK_TEST_LDLM_SKIPPED=1
# (no LDLM server binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
grants=${POLYLOCK_MIXED_GRANTS:-1000}
seed=${POLYLOCK_MIXED_SEED:-$((RANDOM * 32768 + RANDOM))}
backends=
while [ $# -gt 0 ]; do
  case "$1" in
    --grants) grants=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    *) echo "usage: tests/mixed/run.sh [--grants N] [--seed S] [--backends LIST]" >&2; exit 2 ;;
  esac
done
export POLYLOCK_NODE_PROFILE=${POLYLOCK_NODE_PROFILE:-debug}
report=${POLYLOCK_MIXED_REPORT_DIR:-${CARGO_TARGET_DIR:-$root/target}/mixed-report}
faults=${POLYLOCK_TEST_FAULTS_DIR:-}
if [ -z "$faults" ]; then
  echo "tests/mixed: POLYLOCK_TEST_FAULTS_DIR is not set (run inside tests/with-servers.sh)" >&2
  exit 1
fi

# The backends to run, as "BACKEND URL".
runs=("memory memory://")
runs+=("consul -")
runs+=("ferretdb mongodb://127.0.0.1:$(cat "$faults/ferretdb/port")/")
[ -n "${POLYLOCK_TEST_MONGODB_URL:-}" ] && runs+=("mongodb $POLYLOCK_TEST_MONGODB_URL")
runs+=("postgres $(cat "$faults/postgres/url")")
if [ "${POLYLOCK_TEST_LDLM_SKIPPED:-}" = 1 ] || [ ! -f "$faults/ldlm/url" ]; then
  if [ "${CI:-}" = true ] && [ "${POLYLOCK_TEST_LDLM_SKIPPED:-}" != 1 ]; then
    echo "tests/mixed: no LDLM server in $faults/ldlm (nor POLYLOCK_TEST_LDLM_SKIPPED=1)" >&2
    exit 1
  fi
  echo "tests/mixed: ldlm skipped: no LDLM server binary (see README \"LDLM\")"
else
  runs+=("ldlm $(cat "$faults/ldlm/url")")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/polylock-mixed.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0

# The judges' own tests: the broken history must fail both.
(cd tests/mixed/porcupine && GOFLAGS=-mod=mod go test -count=1 ./...)
python3 -m unittest tests/mixed/test_check.py 2>&1 | tail -n 3
(cd tests/mixed/porcupine && GOFLAGS=-mod=mod go build -o "$work/porcupine" .)

bash tests/mixed/contenders.sh "$work/contenders"
# shellcheck disable=SC1091
. "$work/contenders/env"
mapfile -t commands <"$work/contenders/commands"

# The clock probe: one process per language, one after another, the first
# language again last.
probes="$work/clocks"
for line in "${commands[@]}" "${commands[0]}"; do
  read -r -a command <<<"$line"
  timeout 60 "${command[@]:1}" clock >>"$probes" || status=1
done
python3 tests/mixed/check.py clocks "$probes" || status=1

# run_backend BACKEND URL: one backend's run; its output goes to
# $work/BACKEND.out, and $work/BACKEND.failed marks a failure.
run_backend() {
  local backend=$1 url=$2 out="$work/$1"
  mkdir -p "$out"
  {
    echo "tests/mixed: $backend: $grants grants, seed $seed"
    if ! python3 tests/mixed/grants.py --backend "$backend" --url "$url" --grants "$grants" \
        --seed "$seed" --commands "$work/contenders/commands" --work "$out" \
        --porcupine "$work/porcupine" --servers "$faults"; then
      touch "$work/$backend.failed"
      mkdir -p "$report"
      cp -r "$out" "$report/$backend-$seed"
      echo "tests/mixed: $backend failed; history, store log and visualisations in $report/$backend-$seed"
    fi
  } >"$work/$backend.out" 2>&1
}

# The backends run side by side, $jobs at a time (POLYLOCK_MIXED_JOBS,
# default 2), the slowest (FerretDB) first; each has its own servers, so
# their faults do not meet. Their output is shown in the usual order.
jobs=${POLYLOCK_MIXED_JOBS:-2}
selected=()
for run in "${runs[@]}"; do
  read -r backend url <<<"$run"
  case ",${backends:-$backend}," in *",$backend,"*) selected+=("$run") ;; esac
done
ordered=()
for run in "${selected[@]}"; do [[ $run == "ferretdb "* ]] && ordered+=("$run"); done
for run in "${selected[@]}"; do [[ $run == "ferretdb "* ]] || ordered+=("$run"); done
# shellcheck source=../support/pool.sh
source "$root/tests/support/pool.sh"
pool_start "$jobs"
for run in "${ordered[@]}"; do
  read -r backend url <<<"$run"
  pool_add run_backend "$backend" "$url"
done
pool_wait
for run in "${selected[@]}"; do
  read -r backend _ <<<"$run"
  cat "$work/$backend.out"
  [ ! -e "$work/$backend.failed" ] || status=1
done
exit "$status"

#!/usr/bin/env bash
# The benchmark harness, one command: starts the real servers
# (tests/with-servers.sh), runs polylock's scenarios (core/benches/
# scenarios.rs: memory://, Consul, FerretDB on its PostgreSQL storage
# handler (backend "mongodb") and on its SQLite one ("mongodb-sqlite") and,
# when its server binary is there, LDLM, each with its raw floor) and the
# peers side by side in the
# same run — HashiCorp's Go api.Lock and api.Semaphore
# (bench/peers/consul-go), mongodb-lock from npm (bench/peers/mongodb-lock;
# mongo-dlock needs TTL indexes, which FerretDB v1 lacks) and py-ldlm from
# PyPI (bench/peers/py-ldlm) — then writes a Markdown table and a PNG chart.
#
#   bench/run.sh [OUT_DIR]          (default target/bench-report)
#
# Knobs: POLYLOCK_BENCH_ITERATIONS, POLYLOCK_BENCH_SECONDS,
# POLYLOCK_BENCH_LEASES, POLYLOCK_BENCH_RENEW_WINDOW (see scenarios.rs).
# Not part of CI's pass/fail: figures depend on the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$(realpath -m "${1:-target/bench-report}")
mkdir -p "$out"
export POLYLOCK_BENCH_JSON="$out/results.jsonl"
: >"$POLYLOCK_BENCH_JSON"

cargo bench --no-run -q --locked -p polylock --bench scenarios
(cd bench/peers/consul-go && GOSUMDB=off GOFLAGS=-mod=mod go build -o "$out/consul-go" .)
(cd bench/peers/mongodb-lock && npm ci --no-audit --no-fund --silent)
venv="$root/target/bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check matplotlib \
  -r bench/peers/py-ldlm/requirements.txt

export POLYLOCK_BENCH_OUT="$out"
# HashiCorp's api.Lock holds a monitoring long-poll per held lock and a
# connection per waiter: with 64 goroutines it exceeds Consul's default of
# 200 connections per client address (429 errors), so the bench agents allow
# more. (polylock caps its own watches; it runs within the default.)
export POLYLOCK_CONSUL_MAX_CONNS=4096
# The LDLM servers log at warn: at info the bench's server writes two JSON
# lines per call, which slows it (the leases scenario counts renewals with
# an HTTP/2-aware proxy, not from the log). POLYLOCK_LDLM_LOG_LEVEL=info
# keeps the log, and scenarios.rs then also counts its Renew lines.
export POLYLOCK_LDLM_LOG_LEVEL="${POLYLOCK_LDLM_LOG_LEVEL:-warn}"
export POLYLOCK_BENCH_VENV="$venv"
bash tests/with-servers.sh bash -c '
  set -euo pipefail
  # LABEL=URL: the label names the backend in the report (empty: named
  # after the URL scheme).
  runs=("=memory://bench" "=$POLYLOCK_TEST_CONSUL_URL" "mongodb=$POLYLOCK_TEST_FERRETDB_URL"
    "mongodb-sqlite=$POLYLOCK_TEST_FERRETDB_SQLITE_URL")
  if [ -n "${POLYLOCK_TEST_LDLM_URL:-}" ]; then
    runs+=("=$POLYLOCK_TEST_LDLM_URL")
  else
    echo "bench/run.sh: LDLM skipped (no LDLM server binary: see README \"LDLM\")" >&2
  fi
  scenarios() { # SCENARIOS LABEL=URL
    local label=${2%%=*}
    env POLYLOCK_BENCH_SCENARIOS="$1" ${label:+POLYLOCK_BENCH_BACKEND="$label"} \
      cargo bench -q --locked -p polylock --bench scenarios -- "${2#*=}"
  }
  # The leases scenario last and in a process of its own (a fresh heap for
  # the memory-per-lease figure; thousands of leases left behind no longer
  # weigh on the other figures).
  for run in "${runs[@]}"; do
    scenarios latency,contended "$run"
  done
  "$POLYLOCK_BENCH_OUT/consul-go" -addr "${POLYLOCK_TEST_CONSUL_URL#consul://}" \
    -iterations "${POLYLOCK_BENCH_ITERATIONS:-200}" -seconds "${POLYLOCK_BENCH_SECONDS:-5}" \
    -json "$POLYLOCK_BENCH_JSON"
  node bench/peers/mongodb-lock/bench.js "$POLYLOCK_TEST_FERRETDB_URL"
  POLYLOCK_BENCH_BACKEND=mongodb-sqlite \
    node bench/peers/mongodb-lock/bench.js "$POLYLOCK_TEST_FERRETDB_SQLITE_URL"
  if [ -n "${POLYLOCK_TEST_LDLM_URL:-}" ]; then
    "$POLYLOCK_BENCH_VENV/bin/python" bench/peers/py-ldlm/bench.py "$POLYLOCK_TEST_LDLM_URL"
  fi
  for run in "${runs[@]}"; do
    scenarios leases "$run"
  done
'
"$venv/bin/python" bench/report.py "$POLYLOCK_BENCH_JSON" "$out"

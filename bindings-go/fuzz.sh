#!/usr/bin/env bash
# Fuzzes the Go binding with go test -fuzz, on memory://, against the
# INSTALLED C package (lib-env.sh: bindings-c/package.sh's tarball unpacked
# into a scratch prefix, as run-tests.sh does).
#
#   bindings-go/fuzz.sh [--seconds S]     (default 60 per target)
#
# Runs each target for S seconds (go test -run='^$' -fuzz='^FuzzX$'
# -fuzztime=Ss), as many at a time as there are cores, and prints one line
# per target, in order:
#   fuzz go-FuzzX: ok, RUNS runs in S s, corpus N inputs
# (RUNS, S: go's last `fuzz: elapsed: S, execs: RUNS` line; N: its
# `new interesting: K (total: N)`, the seeds and what was found) or
#   fuzz go-FuzzX: FAILED (why)
# and exits non-zero if any failed (go then writes the failing input under
# PACKAGE/testdata/fuzz/FuzzX/; go test -run=FuzzX/NAME replays it). The
# targets: polylock_fuzz_test.go and client/client_fuzz_test.go.
set -euo pipefail
# shellcheck source=../tests/support/pool.sh
source "$(dirname "$0")/../tests/support/pool.sh"
seconds_option 60 "$@"

# package target
targets=(
  ". FuzzNew"
  ". FuzzLock"
  ". FuzzCalls"
  "./client FuzzClient"
)

# A failed setup step (building or unpacking the C package) still gives
# every target its line, so the suite counts the failures it caused.
setup_failed() {
  local status=$?
  for entry in "${targets[@]}"; do
    echo "fuzz go-${entry#* }: FAILED (lib-env.sh: building or unpacking the C package failed, status $status)"
  done
}
trap setup_failed ERR
# shellcheck source=lib-env.sh
source "$(dirname "$0")/lib-env.sh"
cd "$root/bindings-go"
trap - ERR
logs="$prefix/fuzz-logs"
mkdir -p "$logs"

# fuzz_one PACKAGE TARGET: one target's run; its line goes to
# $logs/TARGET.line.
fuzz_one() {
  local pkg=$1 target=$2
  local log="$logs/$target.log" line="$logs/$target.line" status=0 last why saved runs secs corpus
  go test -run='^$' -fuzz="^$target\$" -fuzztime="${seconds}s" -parallel="$workers" "$pkg" >"$log" 2>&1 || status=$?
  last=$(grep -E '^fuzz: elapsed: [0-9]+s, execs: [0-9]+' "$log" | tail -n 1 || true)
  if [ "$status" -ne 0 ] || [ -z "$last" ] || ! grep -qE '^(ok|PASS)' "$log"; then
    tail -n 40 "$log" >&2
    why=$(grep -m1 -E -- '--- FAIL|panic:|Failing input written to|fuzz: .*(crash|error|failed)' "$log" | sed 's/^[[:space:]]*//' || true)
    saved=$(grep -m1 -oE 'testdata/fuzz/[^ ]+' "$log" || true)
    echo "fuzz go-$target: FAILED (${why:-exit status $status}${saved:+; input in $pkg/$saved})" >"$line"
    return
  fi
  runs=$(sed -E 's/.*execs: ([0-9]+).*/\1/' <<<"$last")
  secs=$(sed -E 's/^fuzz: elapsed: ([0-9]+)s.*/\1/' <<<"$last")
  corpus=$(grep -oE 'new interesting: [0-9]+ \(total: [0-9]+\)' <<<"$last" | sed -E 's/.*total: ([0-9]+)\)/\1/' || true)
  if [ -z "$corpus" ]; then
    # No "new interesting" yet on this line: the seed corpus's size.
    corpus=$(grep -oE 'gathering baseline coverage: [0-9]+/[0-9]+' "$log" | tail -n 1 | sed -E 's/.*\///' || true)
  fi
  echo "fuzz go-$target: ok, $runs runs in $secs s, corpus ${corpus:-0} inputs" >"$line"
}

# As many targets at a time as there are cores ($POLYLOCK_FUZZ_JOBS to
# choose), the cores shared out among them (go test -parallel).
jobs=${POLYLOCK_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
case "$jobs" in '' | *[!0-9]* | 0) jobs=1 ;; esac
workers=$(( $(nproc 2>/dev/null || echo 1) / jobs ))
[ "$workers" -ge 1 ] || workers=1
pool_start "$jobs"
for entry in "${targets[@]}"; do
  read -r pkg target <<<"$entry"
  pool_add fuzz_one "$pkg" "$target"
done
pool_wait
failures=0
for entry in "${targets[@]}"; do
  read -r _ target <<<"$entry"
  line="$logs/$target.line"
  if [ -f "$line" ]; then cat "$line"; else echo "fuzz go-$target: FAILED (no result)"; fi
  [ -f "$line" ] && grep -q ': ok,' "$line" || failures=$((failures + 1))
done
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# Every fuzzer, each for a bounded time: the core's cargo-fuzz targets
# (tests/fuzz/rust.sh: URL / name / option parsing, every backend's
# responses), the C ABI's call sequences under AddressSanitizer and
# LeakSanitizer (bindings-c/tests/fuzz/run.sh) and the Go binding's
# `go test -fuzz` targets (bindings-go/fuzz.sh). Each installs what it needs.
#
#   tests/fuzz/run.sh [--seconds S]
#
# S: seconds per target (default $POLYLOCK_FUZZ_SECONDS or 60, as CI runs
# it; run longer outside CI, e.g. --seconds 3600). Every target prints one
# line, "fuzz TARGET: ok, RUNS runs in S s, cov ..., corpus N inputs" or
# "fuzz TARGET: FAILED (...)" (tests/count.py counts them). Runs all three
# even after a failure; exits non-zero if any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${POLYLOCK_FUZZ_SECONDS:-60}
case "${1:-}" in
  --seconds) seconds=${2:?seconds}; shift 2 ;;
  "") ;;
  *) echo "usage: tests/fuzz/run.sh [--seconds S]" >&2; exit 2 ;;
esac
status=0
for runner in tests/fuzz/rust.sh bindings-c/tests/fuzz/run.sh bindings-go/fuzz.sh; do
  echo "=== fuzz: $runner --seconds $seconds"
  bash "$root/$runner" --seconds "$seconds" || status=1
done
exit "$status"

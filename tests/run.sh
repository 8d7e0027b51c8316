#!/usr/bin/env bash
# The whole test suite, as README.md and CI run it: installs what this
# machine lacks (tests/install-deps.sh, idempotent), runs the formatting,
# lint and feature checks (phases fmt, clippy and features: the core library
# with each backend's cargo feature alone, with none and with all,
# tests/check-features.sh; if any fails, the suite is not run),
# then every test phase of tests/suite.sh (Rust workspace, Python, Node, C ABI
# under valgrind, Ruby, Go, mixed clients) against memory:// and the real
# servers (started here and stopped after). Ends with one line per phase
# ("phase NAME: ok (N passed, N failed)", "FAILED (...)" or "skipped (...)")
# and one line "tests: N passed, N failed, N skipped across P phases
# (F phases failed)" summed over every phase (tests/count.py); exits
# non-zero if any phase failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-deps.sh

records=$(mktemp)
trap 'rm -f "$records"' EXIT
export POLYLOCK_TEST_RECORDS=$records

# check NAME COMMAND...: run one check as a phase of one test.
check() {
  local name=$1 status=0; shift
  echo "=== $name: $*"
  "$@" || status=$?
  python3 tests/count.py phase "$name" single "$status" /dev/null "$records"
}
check fmt cargo fmt --all --check
check clippy cargo clippy --workspace --all-targets --locked -- -D warnings
check features bash tests/check-features.sh
if grep -q $'\tfailed\t' "$records"; then
  python3 tests/count.py summary "$records"
  exit 1
fi

checks=$(wc -l <"$records")
status=0
bash tests/with-servers.sh bash tests/suite.sh || status=$?
# tests/suite.sh prints the summary; if it never ran (a server did not
# start), say so in the same form.
if [ "$(wc -l <"$records")" -eq "$checks" ]; then
  [ "$status" -ne 0 ] || status=1
  python3 tests/count.py phase servers single "$status" /dev/null "$records"
  python3 tests/count.py summary "$records" || true
fi
exit "$status"

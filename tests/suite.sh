#!/usr/bin/env bash
# Every test phase, run by tests/run.sh inside tests/with-servers.sh (so the
# servers' URLs are set): the Rust workspace (every test binary even after a
# failure, showing what passing tests print, such as the fault suite's
# counts), the Python package (installed with pip, tested with pytest), the
# Node package (npm install, node --test), then the C ABI under valgrind and
# its Ruby and Go consumers, then the mixed-client fault suite (contenders in
# six languages on the same names under injected faults, judged by the
# fenced-store judge and by Porcupine; tests/mixed/run.sh), every fuzzer for
# a bounded time (tests/fuzz/run.sh) and the bad-input matrix (README's table
# checked against what the bindings' bad-input tests recorded). The release
# builds of later phases (Python wheel, C package, fuzz targets) run in the
# background from the start (tests/prebuild.sh, its lines printed before the
# fuzz phase). Runs every
# phase even after a failure, showing each one's output in
# full, and counts each phase's tests from its runner's own output
# (tests/count.py). Ends with one line per phase, such as "phase rust: ok
# (135 passed, 0 failed)" (and "phase ldlm: skipped (...)" when
# tests/with-servers.sh found no LDLM server binary: the LDLM tests run
# inside the other phases and skip themselves), then "tests: N passed,
# N failed, N skipped across P phases (F phases failed)"; exits non-zero if
# any phase failed.
#
# POLYLOCK_TEST_RECORDS, when set, is a file the phases' records are appended
# to, after any already there (tests/run.sh records its checks first), and
# the summary covers all of them.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# name:format:command; format tells tests/count.py what the runner prints.
phases=(
  "rust:cargo:cargo test --workspace --locked --no-fail-fast -- --show-output"
  "python:pytest:bash bindings-python/run-tests.sh"
  "node:node:bash bindings-node/run-tests.sh"
  "c-abi:c:bash bindings-c/tests/run-c-tests.sh"
  "ruby:minitest:bash bindings-ruby/run-tests.sh"
  "go:go:bash bindings-go/run-tests.sh"
  "mixed:mixed:bash tests/mixed/run.sh"
  "fuzz:fuzz:bash tests/fuzz/run.sh"
  "bad-input:single:python3 tests/bad-input/table.py check \"\$POLYLOCK_BAD_INPUT_RECORDS\" --readme README.md"
)
work=$(mktemp -d "${TMPDIR:-/tmp}/polylock-suite.XXXXXX")
# The release builds later phases need, in the background from the start
# (tests/prebuild.sh), at the lowest priority: they take only CPU the
# phases leave idle, so tests with short TTLs do not compete with them. The
# suite waits for it before the fuzz phase (its last step builds the fuzz
# targets; the mixed phase before it needs only the first two, which are
# done by then, or else its own build waits on cargo's lock).
nice -n 19 bash tests/prebuild.sh >"$work/prebuild.log" 2>&1 &
prebuild=$!
trap 'kill "$prebuild" 2>/dev/null; rm -rf "$work"' EXIT
records=${POLYLOCK_TEST_RECORDS:-$work/records}
touch "$records"
# The bad-input matrix: every binding's bad-input tests append what they saw
# here; the bad-input phase checks README's table against it.
export POLYLOCK_BAD_INPUT_RECORDS=${POLYLOCK_BAD_INPUT_RECORDS:-$work/bad-input.jsonl}
: >"$POLYLOCK_BAD_INPUT_RECORDS"
first=1
for phase in "${phases[@]}"; do
  name=${phase%%:*} rest=${phase#*:}
  format=${rest%%:*} command=${rest#*:}
  # The suite's FerretDB runs on its PostgreSQL handler; on the SQLite one it
  # got stuck after hours of load, answering "database is locked (517)" to
  # every write until restarted (about one CI run in two). Restarting it
  # (same data, same port) before each phase still keeps one stuck server
  # from failing every later phase, whatever its handler.
  if [ -z "$first" ] && [ -n "${POLYLOCK_TEST_FERRETDB_DIR:-}" ]; then
    bash tests/servers/ferretdb.sh restart "$POLYLOCK_TEST_FERRETDB_DIR" >/dev/null ||
      echo "suite: restarting FerretDB before the $name phase failed" >&2
  fi
  first=
  if [ "$name" = fuzz ] && [ -n "$prebuild" ]; then
    wait "$prebuild"
    cat "$work/prebuild.log"
    prebuild=
  fi
  echo "=== $name: $command"
  bash -c "$command" 2>&1 | tee "$work/$name.log"
  status=${PIPESTATUS[0]}
  python3 tests/count.py phase "$name" "$format" "$status" "$work/$name.log" "$records"
  rm -f "$work/$name.log"
done
if [ "${POLYLOCK_TEST_LDLM_SKIPPED:-}" = 1 ]; then
  python3 tests/count.py skip ldlm 'no server binary; see README "LDLM"' "$records"
fi
python3 tests/count.py summary "$records"

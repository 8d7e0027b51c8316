#!/usr/bin/env bash
# The whole test suite, as README.md and CI run it: formatting and lint
# checks, then every test phase of tests/suite.sh (Rust workspace, Python, Node,
# C ABI under valgrind, Ruby, Go) against memory:// and the real servers (started
# here and stopped after). Ends with a line per phase and one line "tests:
# N passed, N failed" summed over the Rust test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
bash tests/with-servers.sh bash tests/suite.sh 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"

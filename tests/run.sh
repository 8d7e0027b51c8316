#!/usr/bin/env bash
# The whole test suite, as README.md and CI run it: formatting and lint
# checks, then every test of the workspace against memory:// and the real
# servers (started here and stopped after). Ends with one summary line,
# "tests: N passed, N failed", summed over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
bash tests/with-servers.sh cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"

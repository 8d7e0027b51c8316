#!/usr/bin/env bash
# Every test phase, run by tests/run.sh inside tests/with-servers.sh (so the
# servers' URLs are set): the Rust workspace (every test binary even after a
# failure, showing what passing tests print, such as the fault suite's
# counts), the Python package (installed
# with pip, tested with pytest), the Node package (npm install, node --test),
# then the C ABI under valgrind and its Ruby
# and Go consumers, then Rust, Python, Node and C contenders on one lock. Runs every phase even after a failure and
# ends with one line per phase; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

phases=(
  "rust:cargo test --workspace --locked --no-fail-fast -- --show-output"
  "python:bash bindings-python/run-tests.sh"
  "node:bash bindings-node/run-tests.sh"
  "c-abi:bash bindings-c/tests/run-c-tests.sh"
  "ruby:bash examples/ruby/run-tests.sh"
  "go:bash examples/go/run-tests.sh"
  "mixed:bash tests/mixed/run.sh"
)
summary=()
status=0
for phase in "${phases[@]}"; do
  name=${phase%%:*}
  echo "=== $name: ${phase#*:}"
  if bash -c "${phase#*:}"; then
    summary+=("phase $name: ok")
  else
    summary+=("phase $name: FAILED")
    status=1
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"

#!/usr/bin/env bash
# The bad-input matrix on its own: runs just the six bad-input test files,
# each through its binding's normal route (cargo test; the Python wheel in a
# fresh venv; the Node tarball in a scratch project; the C program under
# valgrind; the installed Ruby gem; go test against the installed C
# package), on memory:// only, with POLYLOCK_BAD_INPUT_RECORDS set to a
# scratch file, then checks README.md's table against what they recorded
# (tests/bad-input/table.py check).
#
#   tests/bad-input/run.sh          run and check
#   tests/bad-input/run.sh write    run and rewrite README.md's table
#
# The full suite (tests/suite.sh) runs the same files in its phases and
# checks the table in its bad-input phase.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mode=${1:-check}
case "$mode" in check | write) ;; *) echo "usage: run.sh [check|write]" >&2; exit 2 ;; esac
scratch=$(mktemp -d "${TMPDIR:-/tmp}/polylock-bad-input.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export POLYLOCK_BAD_INPUT_RECORDS="$scratch/records.jsonl"
: >"$POLYLOCK_BAD_INPUT_RECORDS"

echo "bad-input: rust"
cargo test -q --locked -p polylock --test bad_input
echo "bad-input: python"
bash bindings-python/run-tests.sh -k test_bad_input
echo "bad-input: node"
POLYLOCK_NODE_TESTS=bad-input.test.js bash bindings-node/run-tests.sh
echo "bad-input: c"
POLYLOCK_C_ONLY=bad-input bash bindings-c/tests/run-c-tests.sh
echo "bad-input: ruby"
POLYLOCK_RUBY_TESTS=test_bad_input.rb bash bindings-ruby/run-tests.sh
echo "bad-input: go"
POLYLOCK_GO_TESTS=TestBadInput bash bindings-go/run-tests.sh

python3 tests/bad-input/table.py "$mode" "$POLYLOCK_BAD_INPUT_RECORDS" --readme README.md

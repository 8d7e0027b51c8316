#!/usr/bin/env bash
# The whole test suite, as README.md and CI run it: formatting and lint
# checks, then every test of the workspace against memory:// and the real
# servers (started here and stopped after).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash tests/with-servers.sh cargo test --workspace --locked

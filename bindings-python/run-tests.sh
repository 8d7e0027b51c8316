#!/usr/bin/env bash
# Tests the Python package as a user gets it: builds the wheel
# (bindings-python/package.sh), installs it with pytest from PyPI into a
# fresh virtualenv, and runs the pytest suite against that installation
# with no Rust toolchain on PATH (tests/support/without-rust.sh). The
# binaries the tests drive, the polylock CLI and the Rust contender, are
# built first and passed in by POLYLOCK_CLI and POLYLOCK_RUST_CONTENDER.
# Server URLs come from tests/with-servers.sh; extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
# Two builds: a target selection (--example) would leave out the CLI's binary.
cargo build -q --locked -p polylock-cli
cargo build -q --locked -p polylock --example contend
wheel=$(bash bindings-python/package.sh | grep '\.whl$')
echo "python: testing $(basename "$wheel") ($(stat -c %s "$wheel") bytes)"
venv="$target_dir/python-test-venv"
rm -rf "$venv"
tests/support/without-rust.sh python3 -m venv "$venv"
tests/support/without-rust.sh "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --only-binary :all: "$wheel" pytest
export POLYLOCK_CLI="$target_dir/debug/polylock"
export POLYLOCK_RUST_CONTENDER="$target_dir/debug/examples/contend"
export POLYLOCK_PYTHON_WHEEL="$wheel"
# From the venv's directory, so neither the repository's root nor
# bindings-python/python/ is on sys.path (the tests import the installation).
cd "$venv"
exec "$root/tests/support/without-rust.sh" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  --rootdir "$root/bindings-python" -c "$root/bindings-python/pyproject.toml" "$root/bindings-python/tests" "$@"

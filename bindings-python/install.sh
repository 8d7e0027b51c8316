#!/usr/bin/env bash
# Installs the package the way a user does (pip install ./bindings-python,
# which builds the extension with maturin) into the virtualenv
# $POLYLOCK_PYTHON_VENV (default: python-venv in cargo's target directory,
# $CARGO_TARGET_DIR or target/), with pytest; prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${POLYLOCK_PYTHON_VENV:-${CARGO_TARGET_DIR:-$root/target}/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  "$root/bindings-python" >&2
echo "$venv/bin/python"

#!/usr/bin/env bash
# Installs the package the way a user does (pip install ./bindings-python,
# which builds the extension with maturin) into a virtualenv under target/,
# then runs its pytest suite. Server URLs come from tests/with-servers.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$root/bindings-python"
cd "$root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider bindings-python/tests

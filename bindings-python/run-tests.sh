#!/usr/bin/env bash
# Installs the package (bindings-python/install.sh: pip install into a
# virtualenv in cargo's target directory) and runs its pytest suite. Server
# URLs come from tests/with-servers.sh; extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$(bash "$root/bindings-python/install.sh")
cd "$root"
exec "$python" -m pytest -q -p no:cacheprovider bindings-python/tests "$@"

#!/usr/bin/env bash
# Mixed clients: Rust, Python, Node and C contenders take one lock at the
# same time, on every real server whose URL is set (POLYLOCK_TEST_CONSUL_URL,
# POLYLOCK_TEST_FERRETDB_URL; tests/with-servers.sh sets them), and
# tests/mixed/check.py judges the shared log through a fenced store.
# Builds what it needs: the Rust `contend` example, the Python package
# (bindings-python/install.sh), the Node addon (npm run build) and the C
# library. With CI=true a missing Consul URL fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rounds=${POLYLOCK_MIXED_ROUNDS:-10}
export POLYLOCK_NODE_PROFILE=${POLYLOCK_NODE_PROFILE:-debug}

cargo build -q --locked -p polylock --example contend
cargo build -q --locked -p polylock-c
python=$(bash bindings-python/install.sh)
[ -d bindings-node/node_modules ] || (cd bindings-node && npm install --no-audit --no-fund)
(cd bindings-node && npm run build >/dev/null)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -std=c11 -Wall -Wextra -Werror -Iinclude tests/mixed/contend.c -o "$work/contend-c" \
  target/debug/libpolylock.a -lpthread -ldl -lm

urls=()
if [ -n "${POLYLOCK_TEST_CONSUL_URL:-}" ]; then
  urls+=("$POLYLOCK_TEST_CONSUL_URL")
elif [ "${CI:-}" = true ]; then
  echo "tests/mixed: POLYLOCK_TEST_CONSUL_URL is not set" >&2
  exit 1
fi
[ -n "${POLYLOCK_TEST_FERRETDB_URL:-}" ] && urls+=("$POLYLOCK_TEST_FERRETDB_URL")

status=0
for url in "${urls[@]}"; do
  name="mixed/$(date +%s%N)-$$"
  log="$work/holds.log"
  : >"$log"
  pids=()
  timeout 600 target/debug/examples/contend "$url" "$name" "$rounds" "$log" & pids+=($!)
  timeout 600 "$python" tests/mixed/contend.py "$url" "$name" "$rounds" "$log" & pids+=($!)
  timeout 600 node tests/mixed/contend.js "$url" "$name" "$rounds" "$log" & pids+=($!)
  timeout 600 "$work/contend-c" "$url" "$name" "$rounds" "$log" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  echo "tests/mixed: ${url%%://*}"
  python3 tests/mixed/check.py "$log" "$rounds" rust python node c || status=1
done
exit "$status"

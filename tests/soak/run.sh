#!/usr/bin/env bash
# The soak test (run by hand, not in CI; tests/soak/README.md): M minutes
# (default 30) of mixed load from one Rust, one Python, one Node and one C
# process, each driving every backend whose URL is set (memory:// always,
# POLYLOCK_TEST_CONSUL_URL, POLYLOCK_TEST_FERRETDB_URL,
# POLYLOCK_TEST_POSTGRES_URL, POLYLOCK_TEST_LDLM_URL), sampled every minute
# by tests/soak/monitor.py, which judges the run (exit 1 on a failure, each
# one named).
#
#   bash tests/with-servers.sh bash tests/soak/run.sh [--minutes M] [--dir DIR]
#
# Builds in release: the `soak` example of polylock-cli, the C library
# (tests/soak/soak.c links it statically), the Python package into its own
# venv ($CARGO_TARGET_DIR or target/, soak-venv) and the Node addon
# (npm run build). Output (samples.tsv, stats-LANG.tsv, LANG.log) goes to
# DIR, default target/soak/YYYYmmdd-HHMMSS. POLYLOCK_SOAK_PAUSE_MS (default
# 1000) paces each worker's cycle.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
minutes=30
dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=${2:?--minutes needs a number}; shift 2 ;;
    --dir) dir=${2:?--dir needs a path}; shift 2 ;;
    *) echo "usage: tests/soak/run.sh [--minutes M] [--dir DIR]" >&2; exit 2 ;;
  esac
done
case "$minutes" in
  '' | *[!0-9]* | 0) echo "tests/soak: --minutes must be a positive integer" >&2; exit 2 ;;
esac
dir=${dir:-$target/soak/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$dir"

backends=(--backend memory=memory://)
[ -n "${POLYLOCK_TEST_CONSUL_URL:-}" ] && backends+=(--backend "consul=$POLYLOCK_TEST_CONSUL_URL")
[ -n "${POLYLOCK_TEST_FERRETDB_URL:-}" ] && backends+=(--backend "ferretdb=$POLYLOCK_TEST_FERRETDB_URL")
[ -n "${POLYLOCK_TEST_POSTGRES_URL:-}" ] && backends+=(--backend "postgres=$POLYLOCK_TEST_POSTGRES_URL")
[ -n "${POLYLOCK_TEST_LDLM_URL:-}" ] && backends+=(--backend "ldlm=$POLYLOCK_TEST_LDLM_URL")
names=()
for ((i = 1; i < ${#backends[@]}; i += 2)); do names+=("${backends[i]%%=*}"); done
echo "tests/soak: backends: ${names[*]}"

echo "tests/soak: building (release)"
# Two builds: --example applies to every package named (it would skip the C library).
cargo build -q --locked --release -p polylock-cli --example soak
cargo build -q --locked --release -p polylock-c --lib
python=$(POLYLOCK_PYTHON_VENV=${POLYLOCK_PYTHON_VENV:-$target/soak-venv} bash bindings-python/install.sh)
[ -d bindings-node/node_modules ] || (cd bindings-node && timeout 600 npm install --no-audit --no-fund)
(cd bindings-node && POLYLOCK_NODE_PROFILE=release npm run build >/dev/null)
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude tests/soak/soak.c -o "$dir/soak-c" \
  "$target/release/libpolylock.a" -lpthread -ldl -lm

run_id="$(date +%s)-$$"
echo "tests/soak: $minutes minute(s), run $run_id, output in $dir"
exec timeout $(((minutes + 10) * 60)) python3 tests/soak/monitor.py \
  --minutes "$minutes" --dir "$dir" --run "$run_id" "${backends[@]}" \
  --proc "rust=$target/release/examples/soak" \
  --proc "python=$python $root/tests/soak/soak.py" \
  --proc "node=node $root/tests/soak/soak.js" \
  --proc "c=$dir/soak-c"

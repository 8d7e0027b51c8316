#!/usr/bin/env bash
# Runs the benchmarks in one go, against real servers started for the
# purpose: C ABI vs native (memory://), Consul and MongoDB latency vs their
# raw floors, Python vs native per backend, Node vs native and the Node
# handoff on MongoDB.
#   tests/bench.sh            (POLYLOCK_BENCH_ITERATIONS=N for more samples)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p polylock-c --bench c_abi_overhead --locked
python=$(bash bindings-python/install.sh)
export POLYLOCK_BENCH_PYTHON="$python"
node bindings-node/scripts/build.js   # release addon
bash tests/with-servers.sh sh -c \
  'cargo bench -p polylock --bench consul_latency --locked &&
   cargo bench -p polylock --bench mongo_latency --locked &&
   "$POLYLOCK_BENCH_PYTHON" bindings-python/benches/overhead.py &&
   node bindings-node/bench/overhead.js'

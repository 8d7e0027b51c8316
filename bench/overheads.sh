#!/usr/bin/env bash
# The bindings' overhead benchmarks in one go, against real servers started
# for the purpose: C ABI vs native (memory:// and Consul), Python vs native
# per backend, Node vs native per backend and the Node handoff on MongoDB.
# (Backends against their floors and peers: bench/run.sh.)
#   bench/overheads.sh        (POLYLOCK_BENCH_ITERATIONS=N for more samples)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p polylock-c --bench c_abi_overhead --locked --no-run
python=$(bash bindings-python/install.sh)
export POLYLOCK_BENCH_PYTHON="$python"
node bindings-node/scripts/build.js   # release addon
bash tests/with-servers.sh sh -c \
  'cargo bench -p polylock-c --bench c_abi_overhead --locked &&
   "$POLYLOCK_BENCH_PYTHON" bindings-python/benches/overhead.py &&
   node bindings-node/bench/overhead.js'

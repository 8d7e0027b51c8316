#!/usr/bin/env bash
# Runs the benchmarks against real servers started for the purpose.
#   tests/bench.sh            (POLYLOCK_BENCH_ITERATIONS=N for more samples)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p polylock-c --bench c_abi_overhead --locked
bash tests/with-servers.sh sh -c \
  'cargo bench -p polylock --bench consul_latency --locked &&
   cargo bench -p polylock --bench mongo_latency --locked'

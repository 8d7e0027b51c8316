#!/usr/bin/env bash
# The core crate's library builds with each backend's cargo feature alone,
# with none (memory:// only), and with the default (all): `cargo check` of
# the lib only, so it stays cheap. tests/run.sh runs it as the phase
# "features", after clippy (which covers the default build's every target).
set -euo pipefail
cd "$(dirname "$0")/.."

for features in "" consul mongodb ldlm postgres; do
  echo "--- polylock, features: ${features:-none}"
  cargo check -p polylock --lib --locked --no-default-features ${features:+--features "$features"}
done
echo "--- polylock, default features"
cargo check -p polylock --lib --locked

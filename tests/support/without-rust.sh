#!/usr/bin/env bash
# Runs a command the way a user without a Rust toolchain would: PATH without
# any directory that holds cargo, rustc or rustup, and no CARGO* / RUSTUP*
# variables. The package tests install and test their artifacts through it,
# so a package that still needs cargo fails there.
#
#   tests/support/without-rust.sh COMMAND [ARGS...]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: without-rust.sh COMMAND [ARGS...]" >&2; exit 2; }
kept=()
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -n "$dir" ] || continue
  if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ]; then
    continue
  fi
  kept+=("$dir")
done
PATH=$(IFS=:; echo "${kept[*]}")
export PATH
for var in $(compgen -e | grep -E '^(CARGO|RUSTUP|RUSTC)' || true); do
  unset "$var"
done
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  echo "without-rust.sh: a Rust toolchain is still on PATH ($(command -v cargo rustc | paste -sd ' '))" >&2
  exit 1
fi
exec "$@"

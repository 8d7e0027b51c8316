#!/usr/bin/env bash
# Builds every contender of the mixed-client fault suite (tests/mixed/run.sh
# has the protocol) and describes how to run them:
#
#   bash tests/mixed/contenders.sh OUT_DIR
#
# writes
#   OUT_DIR/commands   one line per language, "LANG COMMAND [FIXED ARGS...]"
#                      (absolute paths, no spaces inside a word), to which
#                      `run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP` or
#                      `clock` is appended; LANG is rust, python, node, c,
#                      go, ruby
#   OUT_DIR/env        `export` lines the commands need (source it first)
#   OUT_DIR/contend-c, OUT_DIR/contend-go   the compiled C and Go contenders
#
# Builds in cargo's target directory ($CARGO_TARGET_DIR or target/), debug
# profile: the Rust contender (the `mixed-contend` example of polylock-cli),
# the C library (static, for C; shared, for Go through target/debug's
# polylock.pc and for Ruby through POLYLOCK_LIB), the Python wheel
# (bindings-python/package.sh, release; installed into
# target/mixed-python-venv), the Node addon (npm install when
# node_modules is missing, then npm run build). Idempotent; quiet on
# success, a failing step's output on stderr and a non-zero exit.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: tests/mixed/contenders.sh OUT_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
debug="$target/debug"
export POLYLOCK_NODE_PROFILE=${POLYLOCK_NODE_PROFILE:-debug}

# quiet STEP CMD...: runs CMD, showing its output only when it fails.
quiet() {
  local step=$1 output
  shift
  if ! output=$("$@" 2>&1); then
    printf 'tests/mixed/contenders.sh: %s failed:\n%s\n' "$step" "$output" >&2
    exit 1
  fi
}

# Two builds: a target filter (--example) applies to every package named,
# so one command would skip the C library.
quiet "cargo build (rust contender)" cargo build -q --locked -p polylock-cli --example mixed-contend
quiet "cargo build (C library)" cargo build -q --locked -p polylock-c --lib
# The wheel bindings-python/package.sh builds (CI's python phase built it
# already: cargo then has nothing to do), installed into a venv of its own.
quiet "bindings-python/package.sh" bash -c 'bash bindings-python/package.sh >"$1"' _ "$out/.packages"
wheel=$(grep '\.whl$' "$out/.packages")
rm -f "$out/.packages"
venv="$target/mixed-python-venv"
[ -x "$venv/bin/python" ] || quiet "python3 -m venv" python3 -m venv "$venv"
quiet "pip install the wheel" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --force-reinstall --no-deps "$wheel"
python="$venv/bin/python"
if [ ! -d bindings-node/node_modules ]; then
  quiet "npm install" bash -c 'cd bindings-node && npm install --no-audit --no-fund'
fi
quiet "npm run build" bash -c 'cd bindings-node && npm run build'
quiet "cc contend.c" cc -std=c11 -Wall -Wextra -Werror -Iinclude tests/mixed/contend.c \
  -o "$out/contend-c" "$debug/libpolylock.a" -lpthread -ldl -lm
# cgo links target/debug's libpolylock.so (polylock.pc carries an rpath).
# Go's build cache keys a cgo package on the CGO_* variables, not on
# pkg-config's answer, so naming this library there keeps a package built
# against another libpolylock (bindings-go/run-tests.sh's) from being
# reused, and keeps that runner's builds apart from this one.
quiet "go build contend.go" env -C tests/mixed/go \
  PKG_CONFIG_PATH="$debug${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" CGO_ENABLED=1 GOFLAGS=-mod=mod \
  CGO_CFLAGS="-g -O2 -I$root/include" CGO_LDFLAGS="-Wl,-rpath,$debug" \
  go build -o "$out/contend-go" .
ruby=$(command -v ruby)
node=$(command -v node)
quiet "ruby can load the gem and library" env POLYLOCK_LIB="$debug/libpolylock.so" \
  "$ruby" -I"$root/bindings-ruby/lib" -e 'require "polylock"'

cat >"$out/commands.new" <<COMMANDS
rust $debug/examples/mixed-contend
python $python $root/tests/mixed/contend.py
node $node $root/tests/mixed/contend.js
c $out/contend-c
go $out/contend-go
ruby $ruby -I$root/bindings-ruby/lib $root/tests/mixed/contend.rb
COMMANDS
mv "$out/commands.new" "$out/commands"
cat >"$out/env.new" <<ENV
export POLYLOCK_LIB=$debug/libpolylock.so
ENV
mv "$out/env.new" "$out/env"

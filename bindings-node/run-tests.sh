#!/usr/bin/env bash
# The Node package's tests as a user meets the package: bindings-node/package.sh
# builds the tarball (release addon prebuilt for this platform + the crate
# tree of the source fallback), an empty scratch project installs it
# (`npm install polylock-VERSION.tgz`) with no Rust toolchain on PATH
# (tests/support/without-rust.sh), and test/ (copied into the scratch
# project, loading `require("polylock")`, so node_modules/polylock) runs
# there with `node --expose-gc --test`, also without cargo: the helpers the
# tests run (the polylock CLI, examples/rust/contend.rs) are built first and
# passed in as POLYLOCK_CLI and POLYLOCK_CONTEND. Then the checks of the
# source tree (test-source/: the typings against tsc, a dev dependency) run
# in bindings-node. Server URLs come from tests/with-servers.sh.
# POLYLOCK_NODE_TESTS="bad-input.test.js ..." runs only those files of test/
# (and not the source tree's checks).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
without_rust="$root/tests/support/without-rust.sh"

tarball=$(bash "$root/bindings-node/package.sh")
echo "node: package $tarball ($(stat -c %s "$tarball") bytes)"
(cd "$root" && cargo build -q --locked -p polylock-cli && cargo build -q --locked -p polylock --example contend)
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | node -p 'JSON.parse(require("fs").readFileSync(0)).target_directory')

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
npm init -y >/dev/null
"$without_rust" npm install --foreground-scripts "$tarball"
cp -r "$root/bindings-node/test" "$scratch/test"
# POLYLOCK_NODE_TESTS: space-separated files of test/ to run instead of all of them.
tests=(test/)
if [ -n "${POLYLOCK_NODE_TESTS:-}" ]; then
  read -r -a tests <<<"$POLYLOCK_NODE_TESTS"
  tests=("${tests[@]/#/test/}")
fi
status=0
POLYLOCK_NODE_INSTALLED=1 POLYLOCK_REPO="$root" \
  POLYLOCK_CLI="$target_dir/debug/polylock" POLYLOCK_CONTEND="$target_dir/debug/examples/contend" \
  "$without_rust" node --expose-gc --test "${tests[@]}" || status=$?
# Only some test files (POLYLOCK_NODE_TESTS): the source tree's checks are left out.
[ -n "${POLYLOCK_NODE_TESTS:-}" ] && exit "$status"

cd "$root/bindings-node"
npm install --ignore-scripts --no-save >/dev/null
node --test test-source/ || status=$?
exit "$status"

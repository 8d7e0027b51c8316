#!/usr/bin/env bash
# Builds, in the background of tests/suite.sh, the release artifacts that
# later phases need, so that those builds overlap the earlier phases' test
# runs (which mostly wait on servers) instead of adding to the suite's
# length: the Python wheel (phases python and mixed), the C package (ruby,
# go) and cargo-fuzz with the fuzz targets (fuzz).
#
#   tests/prebuild.sh          (tests/suite.sh runs it under nice -n 19)
#
# Each phase still builds what it needs itself: when this step got there
# first, cargo finds nothing to do; while it is still building, cargo waits
# for its lock. So a step that fails here is only reported (one line per
# step, "prebuild STEP: done in S s" or "prebuild STEP: failed ..."), and
# the phase's own build then fails where it shows. Always exits 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 0

# step NAME COMMAND...: runs COMMAND, its output in the log only on failure.
step() {
  local name=$1 start=$SECONDS output
  shift
  if output=$("$@" 2>&1); then
    echo "prebuild $name: done in $((SECONDS - start)) s"
  else
    printf '%s\n' "$output" | tail -n 20
    echo "prebuild $name: failed after $((SECONDS - start)) s (the phase builds it itself)"
  fi
}

step python-wheel bash bindings-python/package.sh
step c-package bash bindings-c/package.sh
step fuzz-targets bash tests/fuzz/rust.sh --build-only
exit 0

#!/usr/bin/env bash
# The core's cargo-fuzz targets (fuzz/), each for a bounded time, on a
# scratch copy of its committed corpus (fuzz/corpus/TARGET), so a run
# leaves the tree as it was (crash artifacts go to fuzz/artifacts/, which
# git ignores).
#
#   tests/fuzz/rust.sh [--seconds S] [--update-corpus] [--build-only] [TARGET...]
#
# S: seconds per target (default $POLYLOCK_FUZZ_SECONDS or 60). TARGETs:
# the targets to run (default: every one in fuzz/Cargo.toml), as many at a
# time as there are cores ($POLYLOCK_FUZZ_JOBS to choose).
# --update-corpus: afterwards, merge what the run found into the committed
# corpus, minimized (libFuzzer -merge=1; for a maintainer, not CI).
# --build-only: install cargo-fuzz and build the targets, run nothing, print
# nothing on stdout (tests/prebuild.sh).
#
# Installs cargo-fuzz when missing (cargo install cargo-fuzz --locked).
# Uses the nightly toolchain with AddressSanitizer when rustup has one,
# else the stable one without a sanitizer (RUSTC_BOOTSTRAP=1, --sanitizer
# none); POLYLOCK_FUZZ_TOOLCHAIN=stable|nightly picks one.
#
# Prints exactly one line per target on stdout:
#   fuzz TARGET: ok, RUNS runs in S s, cov COV, ft FT, corpus N inputs
#   fuzz TARGET: FAILED (why; the crash artifact's path or the log's)
# and exits non-zero if any failed. Everything else goes to stderr or logs.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_dir="$root/fuzz"
seconds=${POLYLOCK_FUZZ_SECONDS:-60}
update=0
build_only=0
targets=()
usage() { echo "usage: tests/fuzz/rust.sh [--seconds S] [--update-corpus] [--build-only] [TARGET...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    --update-corpus) update=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "rust.sh: --seconds takes a whole number, got '$seconds'" >&2; exit 2 ;; esac
[ "$seconds" -ge 1 ] || { echo "rust.sh: --seconds is at least 1" >&2; exit 2; }
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz_dir/Cargo.toml" | grep -v '^polylock-fuzz$')
fi

# Limits for libFuzzer: per input, memory, and the whole run (wall clock).
rss_limit_mb=${POLYLOCK_FUZZ_RSS_MB:-2048}
input_timeout=${POLYLOCK_FUZZ_INPUT_TIMEOUT:-30}

fail_all() {
  for target in "${targets[@]}"; do echo "fuzz $target: FAILED ($1)"; done
  exit 1
}

# cargo-fuzz, installed once.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "rust.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked >&2 || fail_all "cargo install cargo-fuzz failed"
fi

# The toolchain: nightly with AddressSanitizer, else stable without one.
toolchain=${POLYLOCK_FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
cargo_cmd=(cargo)
rustc_cmd=(rustc)
if command -v rustup >/dev/null 2>&1; then
  cargo_cmd=(cargo "+$toolchain")
  rustc_cmd=(rustc "+$toolchain")
fi
# Each toolchain builds into its own directory, so neither rebuilds the other's.
case "$toolchain" in
  nightly) sanitizer=address; target_dir="$fuzz_dir/target" ;;
  stable) sanitizer=none; target_dir="$fuzz_dir/target/stable"; export RUSTC_BOOTSTRAP=1 ;;
  *) echo "rust.sh: POLYLOCK_FUZZ_TOOLCHAIN is stable or nightly, got '$toolchain'" >&2; exit 2 ;;
esac
host=$("${rustc_cmd[@]}" -vV 2>/dev/null | sed -n 's/^host: //p')
[ -n "$host" ] || fail_all "no rustc for toolchain $toolchain"
# The committed fuzz/Cargo.lock, as it is.
"${cargo_cmd[@]}" metadata --locked --format-version 1 --manifest-path "$fuzz_dir/Cargo.toml" >/dev/null 2>&1 \
  || fail_all "fuzz/Cargo.lock needs an update (cargo metadata --locked failed)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/polylock-fuzz.XXXXXX")
keep_scratch=0
cleanup() { [ "$keep_scratch" = 1 ] || rm -rf "$scratch"; }
trap cleanup EXIT

# One build of every target.
echo "rust.sh: building ${targets[*]} with $toolchain (sanitizer $sanitizer)" >&2
build_log="$scratch/build.log"
for target in "${targets[@]}"; do
  if ! (cd "$root" && "${cargo_cmd[@]}" fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" \
      --sanitizer "$sanitizer" "$target") >>"$build_log" 2>&1; then
    keep_scratch=1
    tail -n 40 "$build_log" >&2
    fail_all "cargo fuzz build failed with $toolchain; log $build_log"
  fi
done

[ "$build_only" = 0 ] || exit 0
bin_dir="$target_dir/$host/release"

# run_target TARGET: one target's bounded run; its line goes to
# $scratch/TARGET.line, and $scratch/TARGET.failed marks a failure.
run_target() {
  local target=$1
  local corpus="$scratch/corpus/$target"
  local artifacts="$fuzz_dir/artifacts/$target"
  local log="$scratch/$target.log" line="$scratch/$target.line"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$fuzz_dir/corpus/$target" ]; then cp -R "$fuzz_dir/corpus/$target/." "$corpus/"; fi
  local guard=()
  if command -v timeout >/dev/null 2>&1; then guard=(timeout --kill-after=30 $((seconds * 2 + 120))); fi
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0:allocator_may_return_null=1} \
    "${guard[@]}" "$bin_dir/$target" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" -timeout="$input_timeout" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
  local rc=$?
  local final runs took cov ft corp
  final=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(printf '%s\n' "$final" | sed -n 's/^#\([0-9]*\).*/\1/p')
  [ -n "$took" ] || took=$seconds
  cov=$(printf '%s\n' "$final" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s\n' "$final" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(printf '%s\n' "$final" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  if [ "$rc" -eq 0 ] && [ -n "$final" ] && [ -n "$runs" ]; then
    echo "fuzz $target: ok, $runs runs in $took s, cov ${cov:-0}, ft ${ft:-0}, corpus ${corp:-0} inputs" >"$line"
    if [ "$update" = 1 ]; then
      local merged="$scratch/merged/$target"
      mkdir -p "$merged"
      # A set cover of edge coverage (no hit counters): a modest corpus to commit.
      if "$bin_dir/$target" -set_cover_merge=1 -use_counters=0 -rss_limit_mb="$rss_limit_mb" -timeout="$input_timeout" \
          "$merged" "$fuzz_dir/corpus/$target" "$corpus" >>"$log" 2>&1; then
        rm -rf "$fuzz_dir/corpus/$target" && mkdir -p "$fuzz_dir/corpus/$target" \
          && cp -R "$merged/." "$fuzz_dir/corpus/$target/"
        echo "rust.sh: $target corpus now $(ls "$fuzz_dir/corpus/$target" | wc -l) inputs" >&2
      else
        echo "rust.sh: merging $target's corpus failed; see $log" >&2
      fi
    fi
  else
    touch "$scratch/$target.failed"
    local artifact why
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    why=$(grep -m1 -E "^==[0-9]+== ?ERROR|panicked at|ERROR: libFuzzer" "$log" | sed 's/^==[0-9]*== *//' | cut -c1-160)
    [ -n "$why" ] || why="exit $rc"
    [ "$rc" -eq 124 ] && why="ran past its wall-clock limit"
    if [ -n "$artifact" ]; then
      echo "fuzz $target: FAILED ($why; artifact $artifact; log $log)" >"$line"
    else
      echo "fuzz $target: FAILED ($why; log $log)" >"$line"
    fi
  fi
}

# $jobs targets at a time (default: one per core), each for S seconds of
# wall clock; the lines are printed in the targets' order.
jobs=${POLYLOCK_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
# shellcheck source=../support/pool.sh
source "$root/tests/support/pool.sh"
pool_start "$jobs"
for target in "${targets[@]}"; do
  pool_add run_target "$target"
done
pool_wait
status=0
for target in "${targets[@]}"; do
  cat "$scratch/$target.line" 2>/dev/null || echo "fuzz $target: FAILED (no result)"
  if [ -e "$scratch/$target.failed" ] || [ ! -e "$scratch/$target.line" ]; then
    status=1
    keep_scratch=1
  fi
done
exit "$status"

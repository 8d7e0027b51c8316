#!/usr/bin/env bash
# Fuzzes the C ABI for a bounded time: fuzz_calls.c (libFuzzer, under
# AddressSanitizer and LeakSanitizer) linked with the static library,
# driving random call sequences on memory://.
#
#   bindings-c/tests/fuzz/run.sh [--seconds S]     (default 60)
#
# Installs clang-14 and its libFuzzer runtime (Debian: clang-14,
# libclang-rt-14-dev) when they are missing, builds the library
# (cargo build --locked -p polylock-c; found in $CARGO_TARGET_DIR, default
# target/) and the harness, then runs libFuzzer for S seconds on a scratch
# copy of corpus/ (the committed seeds are never changed). Prints one line:
#   fuzz c-abi-calls: ok, RUNS runs in S s, cov COV, ft FT, corpus N inputs
# or
#   fuzz c-abi-calls: FAILED (why)
# and exits non-zero on failure; the fuzzer's log and the crashing input are
# then kept in $TARGET/fuzz/c-abi-calls/ (reproduce with
# `fuzz_calls CRASH_FILE`; POLYLOCK_FUZZ_TRACE=1 prints every call).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../../../tests/support/pool.sh
source "$root/tests/support/pool.sh"
seconds_option 60 "$@"

label="fuzz c-abi-calls"
failed() {
  echo "$label: FAILED ($1)"
  exit 1
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/polylock-fuzz-c.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
log="$scratch/fuzz.log"

# clang-14 with libFuzzer's runtime, installed once (idempotent).
have_clang() {
  command -v clang-14 >/dev/null 2>&1 || return 1
  local dir
  dir=$(clang-14 -print-resource-dir 2>/dev/null) || return 1
  compgen -G "$dir/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null
}
if ! have_clang; then
  sudo=()
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=(sudo)
  if ! { "${sudo[@]}" apt-get update \
      && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y clang-14 libclang-rt-14-dev; } \
      >"$scratch/apt.log" 2>&1; then
    tail -n 20 "$scratch/apt.log" >&2
    failed "could not install clang-14 libclang-rt-14-dev"
  fi
  have_clang || failed "clang-14 or its libFuzzer runtime is still missing after apt-get install"
fi

cd "$root"
cargo build -q --locked -p polylock-c || failed "cargo build -p polylock-c"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
lib="$target_dir/debug/libpolylock.a"
[ -f "$lib" ] || failed "no $lib"

bin="$scratch/fuzz_calls"
if ! clang-14 -g -O1 -fsanitize=fuzzer,address -Wall -Wextra -Werror -Iinclude \
    "$here/fuzz_calls.c" "$lib" -lpthread -ldl -lm -o "$bin" 2>"$scratch/build.log"; then
  cat "$scratch/build.log" >&2
  failed "building fuzz_calls.c"
fi

mkdir -p "$scratch/corpus" "$scratch/artifacts"
cp "$here"/corpus/* "$scratch/corpus/" 2>/dev/null || true

status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$scratch/artifacts/" \
  "$scratch/corpus" >"$log" 2>&1 || status=$?

keep() {
  local dir="$target_dir/fuzz/c-abi-calls"
  mkdir -p "$dir"
  cp "$log" "$dir/fuzz.log"
  cp "$scratch"/artifacts/* "$dir/" 2>/dev/null || true
  cp "$bin" "$dir/fuzz_calls"
  echo "run.sh: the log, the harness and any crashing input are in $dir" >&2
}

# The fuzzer's final stats line: `#RUNS DONE cov: C ft: F corp: N/...`,
# and `Done RUNS runs in S second(s)`.
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
finish=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)
if [ "$status" -ne 0 ] || [ -z "$done_line" ] || [ -z "$finish" ] \
    || grep -qE '^==[0-9]+==ERROR|^SUMMARY: |deadly signal|fuzz_calls: ' "$log"; then
  tail -n 60 "$log" >&2
  keep
  why=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [^=]*|fuzz_calls: .*|ERROR: libFuzzer: .*|deadly signal' "$log" || true)
  failed "${why:-exit status $status}"
fi
runs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/' <<<"$finish")
secs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/' <<<"$finish")
cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | awk '{print $2}')
ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | awk '{print $2}')
corp=$(grep -oE 'corp: [0-9]+' <<<"$done_line" | awk '{print $2}')
echo "$label: ok, $runs runs in $secs s, cov $cov, ft $ft, corpus $corp inputs"

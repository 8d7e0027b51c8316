#!/usr/bin/env bash
# Builds the Python packages into $POLYLOCK_PACKAGE_DIR (default: packages/
# in cargo's target directory, $CARGO_TARGET_DIR or target/) and prints
# their paths, the wheel first:
#   polylock-VERSION-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#       abi3 (CPython 3.9 and later), linked through zig against glibc
#       2.17's symbols (maturin's compliance check passes for manylinux2014)
#   polylock-VERSION.tar.gz
#       the sdist: bindings-python, the core crate and Cargo.lock; installing
#       it builds the extension with cargo
# The toolchain (bindings-python/build-requirements.txt: maturin, ziglang)
# goes into the virtualenv $POLYLOCK_PYTHON_BUILD_VENV (default:
# python-build-venv in cargo's target directory). POLYLOCK_PYTHON_ZIG=0
# links with the system's linker instead: the tag is then the lowest one
# maturin's check allows for this machine's glibc (manylinux_2_34 on glibc
# 2.34 and later, whose libc versions pthread_* at 2.34).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
out=${POLYLOCK_PACKAGE_DIR:-$target_dir/packages}
case "$out" in /*) ;; *) out="$root/$out" ;; esac
venv=${POLYLOCK_PYTHON_BUILD_VENV:-$target_dir/python-build-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r bindings-python/build-requirements.txt >&2
# maturin finds zig as `python3 -m ziglang`: the venv's python first.
export PATH="$venv/bin:$PATH"
link=(--zig --compatibility manylinux2014)
[ "${POLYLOCK_PYTHON_ZIG:-1}" = 0 ] && link=()
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
maturin build --quiet --release --locked --manifest-path bindings-python/Cargo.toml \
  ${link[@]+"${link[@]}"} --out "$stage" >&2
maturin sdist --manifest-path bindings-python/Cargo.toml --out "$stage" >&2
mkdir -p "$out"
wheel=$(cd "$stage" && ls polylock-*.whl)
sdist=$(cd "$stage" && ls polylock-*.tar.gz)
# Moved beside, then renamed: a reader never sees a half-written file.
for file in "$wheel" "$sdist"; do
  mv -f "$stage/$file" "$out/.$file.$$"
  mv -f "$out/.$file.$$" "$out/$file"
done
echo "$out/$wheel"
echo "$out/$sdist"

#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine may lack: Debian
# packages (curl, python3 with venv, flock, a C toolchain, valgrind, pkg-config, Ruby
# with ruby-ffi and minitest, Node.js and npm, openssl for the LDLM servers'
# throwaway certificates, PostgreSQL for FerretDB's PostgreSQL handler — see
# tests/servers/postgres.sh), the Rust components rustfmt and clippy, and Go
# (which builds the test servers and runs the cgo example). Idempotent: it
# installs only what is missing. tests/run.sh runs it first.
set -euo pipefail

need_apt=()
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v flock >/dev/null || need_apt+=(util-linux)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v go >/dev/null || need_apt+=(golang-go)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ruby >/dev/null || need_apt+=(ruby)
ruby -e 'require "ffi"' 2>/dev/null || need_apt+=(ruby-ffi)
ruby -e 'require "minitest/autorun"; exit!(0)' 2>/dev/null || need_apt+=(ruby-minitest)
# Debian puts the server binaries in /usr/lib/postgresql/VERSION/bin, off PATH.
have_postgres() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
  done
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null
}
have_postgres || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}" >&2
  # As root (CI) directly; on a developer's machine through sudo.
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  ${sudo[@]+"${sudo[@]}"} apt-get update -q
  ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo is missing; this machine kind ships Rust via rustup" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" ||
      rustup component add "$component"
  done
fi

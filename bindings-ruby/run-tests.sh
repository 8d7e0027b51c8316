#!/usr/bin/env bash
# Runs the Ruby tests (minitest) against the INSTALLED gem: builds it with
# package.sh (and so the C package, whose bin/polylock the LDLM tests use as
# POLYLOCK_CLI to revoke leases), installs it with `gem install --local`
# into a fresh GEM_HOME (ffi comes from the system's gems, e.g. Debian's
# ruby-ffi), and runs test/ through tests/support/without-rust.sh, without
# -Ilib, so `require "polylock"` loads the installed gem and its library.
# POLYLOCK_RUBY_TESTS (a glob in test/, default test_*.rb) picks the files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gem=$(POLYLOCK_PACKAGE_DIR="$work/packages" bash "$root/bindings-ruby/package.sh")
tarball=$(ls "$work"/packages/polylock-*-linux-gnu.tar.gz)
mkdir -p "$work/c"
tar -C "$work/c" --strip-components=1 -xzf "$tarball"
export GEM_HOME="$work/gems"
gem install --local --no-document --quiet "$gem" >&2
unset POLYLOCK_LIB
export POLYLOCK_CLI="$work/c/bin/polylock"
export POLYLOCK_TEST_INSTALLED_GEM="$GEM_HOME"
cd "$root/bindings-ruby/test"
"$root/tests/support/without-rust.sh" \
  ruby -w -I. -e 'Dir[ENV.fetch("POLYLOCK_RUBY_TESTS", "test_*.rb")].sort.each { |f| require_relative f }'

#!/usr/bin/env bash
# The Node package's tests as a user runs them: `npm install ./bindings-node`
# into a scratch project (the install script builds the addon), then the
# package's own `npm install` (dev dependencies: typescript for the typings
# check) and `npm test`. Server URLs come from tests/with-servers.sh.
# POLYLOCK_NODE_PROFILE=debug (the default here) builds the addon in debug.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export POLYLOCK_NODE_PROFILE=${POLYLOCK_NODE_PROFILE:-debug}
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm init -y >/dev/null && npm install "$root/bindings-node" &&
  node -e 'require("polylock"); console.log("npm install ./bindings-node: loads")')
cd "$root/bindings-node"
npm install
npm test

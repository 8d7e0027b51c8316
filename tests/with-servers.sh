#!/usr/bin/env bash
# Starts every real server the tests use, exports their URLs, runs the given
# command, and stops the servers again whatever happens.
#
#   tests/with-servers.sh COMMAND [ARGS...]
#
# Exports POLYLOCK_TEST_CONSUL_URL, POLYLOCK_TEST_CONSUL_ACL_URL,
# POLYLOCK_TEST_CONSUL_ACL_TOKEN, POLYLOCK_TEST_CONSUL_TLS_URL,
# POLYLOCK_TEST_CONSUL_TLS_CERTS, POLYLOCK_CONSUL_BIN and
# POLYLOCK_TEST_FERRETDB_URL, POLYLOCK_TEST_FERRETDB_RESTART_URL and
# POLYLOCK_TEST_FERRETDB_RESTART_DIR (a second FerretDB that tests restart;
# POLYLOCK_TEST_MONGODB_URL, a real MongoDB, is left as the caller set it),
# and POLYLOCK_TEST_FAULTS_DIR: servers only the fault suite touches (it
# restarts and kills them): consul-dev/ (a dev agent), consul-server/ (one
# persistent server), consul-cluster/ (three servers), ferretdb/ — each the
# STATE_DIR of tests/servers/consul.sh or ferretdb.sh.
# Servers listen on
# 127.0.0.1 only, on free ports, with state in a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
servers="$root/tests/servers"
state=$(mktemp -d "${TMPDIR:-/tmp}/polylock-servers.XXXXXX")

cleanup() {
  bash "$servers/consul.sh" stop "$state/consul" || true
  bash "$servers/consul.sh" stop "$state/consul-acl" || true
  bash "$servers/consul.sh" stop "$state/consul-tls" || true
  bash "$servers/ferretdb.sh" stop "$state/ferretdb" || true
  bash "$servers/ferretdb.sh" stop "$state/ferretdb-restart" || true
  for dir in consul-dev consul-server consul-cluster; do
    bash "$servers/consul.sh" stop "$state/faults/$dir" || true
  done
  bash "$servers/ferretdb.sh" stop "$state/faults/ferretdb" || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

consul_http=$(bash "$servers/consul.sh" start "$state/consul")
consul_acl_http=$(bash "$servers/consul.sh" start-acl "$state/consul-acl")
consul_tls_https=$(bash "$servers/consul.sh" start-tls "$state/consul-tls")
export POLYLOCK_TEST_FERRETDB_URL=$(bash "$servers/ferretdb.sh" start "$state/ferretdb")
export POLYLOCK_TEST_FERRETDB_RESTART_URL=$(bash "$servers/ferretdb.sh" start "$state/ferretdb-restart")
export POLYLOCK_TEST_FERRETDB_RESTART_DIR="$state/ferretdb-restart"
export POLYLOCK_CONSUL_BIN=$(bash "$servers/consul.sh" build)
bash "$servers/consul.sh" start "$state/faults/consul-dev" >/dev/null
bash "$servers/consul.sh" start-server "$state/faults/consul-server" >/dev/null
bash "$servers/consul.sh" start-cluster "$state/faults/consul-cluster" >/dev/null
bash "$servers/ferretdb.sh" start "$state/faults/ferretdb" >/dev/null
export POLYLOCK_TEST_FAULTS_DIR="$state/faults"
export POLYLOCK_TEST_CONSUL_URL="consul://${consul_http#http://}"
export POLYLOCK_TEST_CONSUL_ACL_URL="consul://${consul_acl_http#http://}"
export POLYLOCK_TEST_CONSUL_ACL_TOKEN=$(cat "$state/consul-acl/acl.token")
export POLYLOCK_TEST_CONSUL_TLS_URL="consul+https://${consul_tls_https#https://}"
export POLYLOCK_TEST_CONSUL_TLS_CERTS="$state/consul-tls/certs"

"$@"

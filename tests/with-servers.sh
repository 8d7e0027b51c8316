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
# all on FerretDB's PostgreSQL storage handler, each with its own PostgreSQL
# (README "Testing" says why), POLYLOCK_TEST_FERRETDB_SQLITE_URL (a FerretDB
# on its SQLite handler: the conformance suite and the bench run there too),
# POLYLOCK_TEST_POSTGRES_URL and POLYLOCK_TEST_POSTGRES_DIR (a PostgreSQL
# server for the postgres:// backend, tests/servers/postgres.sh's STATE_DIR),
# POLYLOCK_TEST_POSTGRES_RESTART_URL and POLYLOCK_TEST_POSTGRES_RESTART_DIR
# (a second one, which a test restarts), POLYLOCK_TEST_POSTGRES_TLS_URL and
# POLYLOCK_TEST_POSTGRES_TLS_DIR (TLS only, roles signing in by password and
# by client certificate: postgres.sh start-tls),
# and POLYLOCK_TEST_FAULTS_DIR: servers only the fault suite touches (it
# restarts and kills them): consul-dev/ (a dev agent), consul-server/ (one
# persistent server), consul-cluster/ (three servers), ferretdb/, postgres/,
# ldlm/ — each the STATE_DIR of tests/servers/consul.sh, ferretdb.sh,
# postgres.sh or ldlm.sh
# (ldlm/url holds its URL).
#
# LDLM servers run only when their binary exists (tests/servers/ldlm.sh bin:
# $POLYLOCK_LDLM_SERVER, default ~/.cache/polylock/ldlm/v1.2.2/ldlm-server;
# nothing here builds or downloads it). Then it exports:
#   POLYLOCK_LDLM_SERVER             the binary
#   POLYLOCK_TEST_LDLM_URL           a plain server (ldlm://127.0.0.1:PORT)
#   POLYLOCK_TEST_LDLM_LOG           its log (the "Lock request" lines show a
#                                    waiter reached the server)
#   POLYLOCK_TEST_LDLM_STATE         its STATE_DIR (for `ldlm.sh restart`)
#   POLYLOCK_TEST_LDLM_RESTART_URL   a second plain server, for restart tests
#   POLYLOCK_TEST_LDLM_RESTART_STATE its STATE_DIR
#   POLYLOCK_TEST_LDLM_PASSWORD_URL  a server requiring a password (not in
#                                    the URL)
#   POLYLOCK_TEST_LDLM_PASSWORD      that password
#   POLYLOCK_TEST_LDLM_TLS_URL       a TLS server (ldlms://127.0.0.1:PORT)
#   POLYLOCK_TEST_LDLM_TLS_CERTS     its certs dir (ca.pem, server.pem,
#                                    server-key.pem)
#   POLYLOCK_TEST_LDLM_MTLS_URL      a TLS server requiring client certificates
#   POLYLOCK_TEST_LDLM_MTLS_CERTS    its certs dir (also client.pem,
#                                    client-key.pem)
# Without the binary it prints one line saying so, exports
# POLYLOCK_TEST_LDLM_SKIPPED=1 and none of the variables above (the tests
# skip LDLM, in CI too).
#
# Servers listen on
# 127.0.0.1 only, on free ports, with state in a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
servers="$root/tests/servers"
state=$(mktemp -d "${TMPDIR:-/tmp}/polylock-servers.XXXXXX")
# PostgreSQL runs as user postgres when this runs as root
# (tests/servers/postgres.sh): let it through, without listing the directory.
chmod 711 "$state"

cleanup() {
  bash "$servers/consul.sh" stop "$state/consul" || true
  bash "$servers/consul.sh" stop "$state/consul-acl" || true
  bash "$servers/consul.sh" stop "$state/consul-tls" || true
  bash "$servers/ferretdb.sh" stop "$state/ferretdb" || true
  bash "$servers/ferretdb.sh" stop "$state/ferretdb-restart" || true
  bash "$servers/ferretdb.sh" stop "$state/ferretdb-sqlite" || true
  bash "$servers/postgres.sh" stop "$state/postgres" || true
  bash "$servers/postgres.sh" stop "$state/postgres-restart" || true
  bash "$servers/postgres.sh" stop "$state/postgres-tls" || true
  for dir in ldlm ldlm-restart ldlm-password ldlm-tls ldlm-mtls; do
    bash "$servers/ldlm.sh" stop "$state/$dir" || true
  done
  for dir in consul-dev consul-server consul-cluster; do
    bash "$servers/consul.sh" stop "$state/faults/$dir" || true
  done
  bash "$servers/ferretdb.sh" stop "$state/faults/ferretdb" || true
  bash "$servers/postgres.sh" stop "$state/faults/postgres" || true
  bash "$servers/ldlm.sh" stop "$state/faults/ldlm" || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each value is assigned before it is exported: `export X=$(cmd)` would hide
# a failing cmd from set -e.
consul_http=$(bash "$servers/consul.sh" start "$state/consul")
consul_acl_http=$(bash "$servers/consul.sh" start-acl "$state/consul-acl")
consul_tls_https=$(bash "$servers/consul.sh" start-tls "$state/consul-tls")
POLYLOCK_TEST_FERRETDB_URL=$(bash "$servers/ferretdb.sh" start "$state/ferretdb" postgresql)
POLYLOCK_TEST_FERRETDB_RESTART_URL=$(bash "$servers/ferretdb.sh" start "$state/ferretdb-restart" postgresql)
POLYLOCK_TEST_FERRETDB_RESTART_DIR="$state/ferretdb-restart"
POLYLOCK_TEST_FERRETDB_SQLITE_URL=$(bash "$servers/ferretdb.sh" start "$state/ferretdb-sqlite" sqlite)
POLYLOCK_TEST_FERRETDB_DIR="$state/ferretdb"
POLYLOCK_TEST_POSTGRES_URL=$(bash "$servers/postgres.sh" start "$state/postgres" polylock)
POLYLOCK_TEST_POSTGRES_DIR="$state/postgres"
POLYLOCK_TEST_POSTGRES_RESTART_URL=$(bash "$servers/postgres.sh" start "$state/postgres-restart" polylock)
POLYLOCK_TEST_POSTGRES_RESTART_DIR="$state/postgres-restart"
POLYLOCK_TEST_POSTGRES_TLS_URL=$(bash "$servers/postgres.sh" start-tls "$state/postgres-tls" polylock)
POLYLOCK_TEST_POSTGRES_TLS_DIR="$state/postgres-tls"
POLYLOCK_CONSUL_BIN=$(bash "$servers/consul.sh" build)
export POLYLOCK_TEST_POSTGRES_URL POLYLOCK_TEST_POSTGRES_DIR \
  POLYLOCK_TEST_POSTGRES_RESTART_URL POLYLOCK_TEST_POSTGRES_RESTART_DIR \
  POLYLOCK_TEST_POSTGRES_TLS_URL POLYLOCK_TEST_POSTGRES_TLS_DIR
export POLYLOCK_TEST_FERRETDB_URL POLYLOCK_TEST_FERRETDB_RESTART_URL \
  POLYLOCK_TEST_FERRETDB_RESTART_DIR POLYLOCK_TEST_FERRETDB_DIR \
  POLYLOCK_TEST_FERRETDB_SQLITE_URL POLYLOCK_CONSUL_BIN
bash "$servers/consul.sh" start "$state/faults/consul-dev" >/dev/null
bash "$servers/consul.sh" start-server "$state/faults/consul-server" >/dev/null
bash "$servers/consul.sh" start-cluster "$state/faults/consul-cluster" >/dev/null
bash "$servers/ferretdb.sh" start "$state/faults/ferretdb" postgresql >/dev/null
bash "$servers/postgres.sh" start "$state/faults/postgres" polylock >/dev/null
export POLYLOCK_TEST_FAULTS_DIR="$state/faults"
export POLYLOCK_TEST_CONSUL_URL="consul://${consul_http#http://}"
export POLYLOCK_TEST_CONSUL_ACL_URL="consul://${consul_acl_http#http://}"
POLYLOCK_TEST_CONSUL_ACL_TOKEN=$(cat "$state/consul-acl/acl.token")
export POLYLOCK_TEST_CONSUL_ACL_TOKEN
export POLYLOCK_TEST_CONSUL_TLS_URL="consul+https://${consul_tls_https#https://}"
export POLYLOCK_TEST_CONSUL_TLS_CERTS="$state/consul-tls/certs"

if ldlm_bin=$(bash "$servers/ldlm.sh" bin 2>/dev/null); then
  unset POLYLOCK_TEST_LDLM_SKIPPED
  POLYLOCK_LDLM_SERVER=$ldlm_bin
  POLYLOCK_TEST_LDLM_URL=$(bash "$servers/ldlm.sh" start "$state/ldlm")
  POLYLOCK_TEST_LDLM_RESTART_URL=$(bash "$servers/ldlm.sh" start "$state/ldlm-restart")
  POLYLOCK_TEST_LDLM_PASSWORD_URL=$(bash "$servers/ldlm.sh" start-password "$state/ldlm-password")
  POLYLOCK_TEST_LDLM_PASSWORD=$(cat "$state/ldlm-password/password")
  POLYLOCK_TEST_LDLM_TLS_URL=$(bash "$servers/ldlm.sh" start-tls "$state/ldlm-tls")
  POLYLOCK_TEST_LDLM_MTLS_URL=$(bash "$servers/ldlm.sh" start-mtls "$state/ldlm-mtls")
  bash "$servers/ldlm.sh" start "$state/faults/ldlm" >/dev/null
  export POLYLOCK_LDLM_SERVER POLYLOCK_TEST_LDLM_URL POLYLOCK_TEST_LDLM_RESTART_URL \
    POLYLOCK_TEST_LDLM_PASSWORD_URL POLYLOCK_TEST_LDLM_PASSWORD \
    POLYLOCK_TEST_LDLM_TLS_URL POLYLOCK_TEST_LDLM_MTLS_URL
  export POLYLOCK_TEST_LDLM_LOG="$state/ldlm/ldlm.log"
  export POLYLOCK_TEST_LDLM_STATE="$state/ldlm"
  export POLYLOCK_TEST_LDLM_RESTART_STATE="$state/ldlm-restart"
  export POLYLOCK_TEST_LDLM_TLS_CERTS="$state/ldlm-tls/certs"
  export POLYLOCK_TEST_LDLM_MTLS_CERTS="$state/ldlm-mtls/certs"
else
  echo "LDLM: skipped, no server binary (looked for $(bash "$servers/ldlm.sh" path)); see README \"LDLM\"" >&2
  unset POLYLOCK_LDLM_SERVER POLYLOCK_TEST_LDLM_URL POLYLOCK_TEST_LDLM_LOG \
    POLYLOCK_TEST_LDLM_STATE POLYLOCK_TEST_LDLM_RESTART_URL POLYLOCK_TEST_LDLM_RESTART_STATE \
    POLYLOCK_TEST_LDLM_PASSWORD_URL POLYLOCK_TEST_LDLM_PASSWORD POLYLOCK_TEST_LDLM_TLS_URL \
    POLYLOCK_TEST_LDLM_TLS_CERTS POLYLOCK_TEST_LDLM_MTLS_URL POLYLOCK_TEST_LDLM_MTLS_CERTS
  export POLYLOCK_TEST_LDLM_SKIPPED=1
fi

"$@"

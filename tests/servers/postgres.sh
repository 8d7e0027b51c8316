#!/usr/bin/env bash
# Start and stop a throwaway PostgreSQL server (Debian's package, installed by
# tests/install-deps.sh) for the tests: FerretDB's PostgreSQL handler
# (tests/servers/ferretdb.sh) and any test that wants PostgreSQL itself.
#
#   postgres.sh start STATE_DIR [DB]  initdb a fresh cluster in STATE_DIR, start
#                                     it on 127.0.0.1 (free port), create
#                                     database DB (default polylock); print
#                                     postgres://polylock@127.0.0.1:PORT/DB
#   postgres.sh start-tls STATE_DIR [DB]
#                                     the same, TLS only (a throwaway CA in
#                                     STATE_DIR/certs: ca.pem, client.pem,
#                                     client-key.pem), with roles polylock
#                                     (trust), polylock_pw (SCRAM password in
#                                     STATE_DIR/password) and polylock_cert
#                                     (client certificate); print
#                                     postgres://polylock@localhost:PORT/DB?sslmode=verify-full&sslrootcert=…
#   postgres.sh restart STATE_DIR     stop it (if running) and start it again
#                                     (same port, same data)
#   postgres.sh stop STATE_DIR        stop it (fast shutdown; bounded)
#   postgres.sh status STATE_DIR      exit 0 while it runs
#   postgres.sh url STATE_DIR         print the URL `start` printed
#   postgres.sh psql STATE_DIR ARGS…  run psql on its database as its superuser
#   postgres.sh bindir                print the directory of the server binaries
#
# STATE_DIR holds data/ (the cluster), run/ (its unix socket, mode 0700),
# postgres.log, port and url. The superuser is `polylock`; the only way in is
# TCP from 127.0.0.1 with trust auth (no password) — the unix socket accepts
# no one. A test server: fsync, synchronous_commit and full_page_writes are
# off (a killed server may lose its last fraction of a second of commits; a
# crash of the machine may corrupt the cluster).
#
# initdb and postgres refuse to run as root. As root, they run as the
# unprivileged user $POLYLOCK_PG_USER (default postgres, which Debian's package
# creates), which then owns STATE_DIR; every directory above STATE_DIR must let
# that user through (o+x: /tmp does, a `mktemp -d` directory does not until
# `chmod 711`). POLYLOCK_PG_BINDIR overrides where the binaries are (default:
# the newest /usr/lib/postgresql/*/bin, else the directory of `initdb` on PATH).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

PG_SUPERUSER=polylock
# start-tls's roles: one signs in with a password, one with a certificate.
PG_PASSWORD_USER=polylock_pw
PG_CERT_USER=polylock_cert

pg_bindir() {
  local dir
  if [ -n "${POLYLOCK_PG_BINDIR:-}" ]; then
    echo "$POLYLOCK_PG_BINDIR"
    return
  fi
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
    return
  fi
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  die "no PostgreSQL server binaries (initdb, pg_ctl); run tests/install-deps.sh"
}

# as_owner COMMAND…: run COMMAND as the user that owns the cluster (root
# cannot run initdb, pg_ctl or postgres), from a directory that user can enter.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u "$pg_user" -- "$@")
  else
    "$@"
  fi
}

# prepare_dir STATE_DIR: create it; as root, hand it to the cluster's user and
# check that user can reach it.
prepare_dir() {
  local state=$1
  mkdir -p "$state"
  if [ "$(id -u)" -eq 0 ]; then
    id -u "$pg_user" >/dev/null 2>&1 ||
      die "no user '$pg_user' to run PostgreSQL as (Debian's postgresql package creates it; or set POLYLOCK_PG_USER)"
    chown -R "$pg_user:" "$state"
    runuser -u "$pg_user" -- test -w "$state" ||
      die "user '$pg_user' cannot reach $state: let it through every directory above (chmod o+x, e.g. chmod 711 on a mktemp -d directory)"
  fi
}

running() {
  local state=$1
  [ -f "$state/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$state/data" status >/dev/null 2>&1
}

# launch STATE_DIR: start the cluster; wait (bounded) until it accepts
# connections on its TCP port.
launch() {
  local state=$1 port
  port=$(cat "$state/port")
  as_owner "$bindir/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 60 start >/dev/null ||
    { cat "$state/postgres.log" >&2; die "postgres did not start"; }
  wait_for 30 "postgres on 127.0.0.1:$port" \
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d postgres ||
    { cat "$state/postgres.log" >&2; die "postgres does not accept connections"; }
}

# shut STATE_DIR: fast shutdown (rolls back open transactions), bounded; if
# that times out, an immediate one; then SIGKILL to the postmaster.
shut() {
  local state=$1 pid
  [ -f "$state/data/postmaster.pid" ] || return 0
  as_owner "$bindir/pg_ctl" -D "$state/data" -m fast -w -t 30 stop >/dev/null 2>&1 && return 0
  as_owner "$bindir/pg_ctl" -D "$state/data" -m immediate -w -t 10 stop >/dev/null 2>&1 && return 0
  pid=$(head -n 1 "$state/data/postmaster.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "postgres (pid $pid) did not stop"
}

# create_cluster STATE_DIR: initdb a fresh cluster there, on a free port,
# with the settings every test server has (pg_hba.conf is the caller's).
create_cluster() {
  local state=$1 port
  [ ! -e "$state/data" ] || die "$state/data exists: start wants a fresh STATE_DIR (use restart)"
  prepare_dir "$state"
  as_owner "$bindir/initdb" -D "$state/data" -U "$PG_SUPERUSER" --auth=reject \
    --encoding=UTF8 --locale=C --no-sync >"$state/initdb.log" 2>&1 ||
    { cat "$state/initdb.log" >&2; die "initdb failed"; }
  port=$(free_port)
  echo "$port" >"$state/port"
  as_owner mkdir -m 700 "$state/run"
  # postgresql.conf and pg_hba.conf belong to the cluster's user; append and
  # overwrite through it.
  as_owner tee -a "$state/data/postgresql.conf" >/dev/null <<CONF

# tests/servers/postgres.sh: a throwaway test server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state/run'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
}

pg_user=${POLYLOCK_PG_USER:-postgres}
cmd=${1:-}
# STATE_DIR as an absolute path: the server and as_owner run elsewhere.
if [ -n "${2:-}" ] && [ "$cmd" != bindir ]; then
  case $2 in /*) ;; *) set -- "$1" "$PWD/$2" "${@:3}" ;; esac
fi
case "$cmd" in
  bindir) pg_bindir ;;
  start)
    state=${2:?state dir}
    db=${3:-polylock}
    bindir=$(pg_bindir)
    create_cluster "$state"
    as_owner tee "$state/data/pg_hba.conf" >/dev/null <<'HBA'
# tests/servers/postgres.sh: TCP from 127.0.0.1 only, no password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
HBA
    launch "$state"
    port=$(cat "$state/port")
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" "$db" ||
      die "createdb $db failed"
    echo "postgres://$PG_SUPERUSER@127.0.0.1:$port/$db" >"$state/url"
    cat "$state/url"
    ;;
  start-tls)
    state=${2:?state dir}
    db=${3:-polylock}
    bindir=$(pg_bindir)
    create_cluster "$state"
    make_certs "$state/certs" yes "$PG_CERT_USER"
    # The server's copies belong to the cluster's user (its key 0600).
    as_owner mkdir -m 700 "$state/data/tls"
    for file in ca.pem server.pem server-key.pem; do
      as_owner tee "$state/data/tls/$file" >/dev/null <"$state/certs/$file"
    done
    as_owner chmod 600 "$state/data/tls/server-key.pem"
    chmod 644 "$state/certs/client-key.pem"
    as_owner tee -a "$state/data/postgresql.conf" >/dev/null <<CONF
ssl = on
ssl_cert_file = '$state/data/tls/server.pem'
ssl_key_file = '$state/data/tls/server-key.pem'
ssl_ca_file = '$state/data/tls/ca.pem'
password_encryption = 'scram-sha-256'
CONF
    as_owner tee "$state/data/pg_hba.conf" >/dev/null <<HBA
# tests/servers/postgres.sh start-tls: TLS from 127.0.0.1 only; the
# superuser without a password, $PG_PASSWORD_USER by password (SCRAM),
# $PG_CERT_USER by client certificate; nothing without TLS.
# TYPE   DATABASE  USER               ADDRESS       METHOD
hostssl  all       $PG_SUPERUSER      127.0.0.1/32  trust
hostssl  all       $PG_PASSWORD_USER  127.0.0.1/32  scram-sha-256
hostssl  all       $PG_CERT_USER      127.0.0.1/32  cert
host     all       all                127.0.0.1/32  reject
HBA
    launch "$state"
    port=$(cat "$state/port")
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$state/password"
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" "$db" ||
      die "createdb $db failed"
    "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d "$db" <<SQL ||
CREATE ROLE $PG_PASSWORD_USER LOGIN PASSWORD '$password';
CREATE ROLE $PG_CERT_USER LOGIN;
GRANT CREATE ON DATABASE $db TO $PG_PASSWORD_USER, $PG_CERT_USER;
SQL
      die "creating the roles failed"
    echo "postgres://$PG_SUPERUSER@localhost:$port/$db?sslmode=verify-full&sslrootcert=$state/certs/ca.pem" >"$state/url"
    cat "$state/url"
    ;;
  restart)
    state=${2:?state dir}
    bindir=$(pg_bindir)
    [ -f "$state/port" ] || die "$state: nothing started there"
    shut "$state"
    launch "$state"
    ;;
  stop)
    state=${2:?state dir}
    [ -d "$state/data" ] || exit 0
    bindir=$(pg_bindir)
    shut "$state"
    ;;
  status)
    state=${2:?state dir}
    bindir=$(pg_bindir)
    running "$state"
    ;;
  url)
    state=${2:?state dir}
    cat "$state/url"
    ;;
  psql)
    state=${2:?state dir}
    shift 2
    bindir=$(pg_bindir)
    url=$(cat "$state/url")
    exec "$bindir/psql" "$url" "$@"
    ;;
  *) die "usage: postgres.sh start DIR [DB]|start-tls DIR [DB]|restart DIR|stop DIR|status DIR|url DIR|psql DIR ARGS…|bindir" ;;
esac

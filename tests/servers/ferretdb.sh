#!/usr/bin/env bash
# Build (once, cached), start and stop a real FerretDB (MongoDB wire protocol)
# for the tests, on its SQLite storage handler or on its PostgreSQL one.
#
#   ferretdb.sh build               print the path of the cached binary
#   ferretdb.sh start STATE_DIR [sqlite|postgresql]
#                                   start on 127.0.0.1 (free port) with fresh
#                                   storage; print a mongodb:// URL. sqlite
#                                   (the default) keeps its data in
#                                   STATE_DIR/data/; postgresql starts its own
#                                   PostgreSQL (tests/servers/postgres.sh) in
#                                   STATE_DIR/postgres/, database ferretdb.
#                                   The handler is kept in STATE_DIR/handler.
#   ferretdb.sh restart STATE_DIR   stop FerretDB and start it again (same
#                                   port, same handler, same data); a
#                                   PostgreSQL it started keeps running (it is
#                                   started again only if it had stopped)
#   ferretdb.sh stop STATE_DIR      stop it (and the PostgreSQL it started)
#
# FerretDB v1 trims capped collections only every minute, 10% at a time, by
# default; polylock's events collection then outgrows its cap and every
# tailing rescan slows down. The server here trims every second (the same
# flags are recommended in README.md for FerretDB deployments), on both
# handlers.
#
# The postgresql handler as root: see tests/servers/postgres.sh (PostgreSQL
# then runs as user postgres, which must be let through the directories above
# STATE_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

FERRETDB_VERSION="${POLYLOCK_FERRETDB_VERSION:-v1.24.2}"

# `go install …@version` cannot be used: it looks up the module's version
# list for deprecations, which the module proxy refuses (403) for FerretDB.
# And the published module lacks build/version/version.txt, which FerretDB
# generates at release time and panics without (its message says to create
# it by hand). So: download the exact module, copy it into a throwaway
# directory, write version.txt there, and build it through a wrapper module.
build_ferretdb() {
  local out=$1 work dir
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  # The checksum database is not reachable from every build machine; this
  # only builds a throwaway test server, so it does without it.
  export GOSUMDB=off GOFLAGS=-mod=mod
  dir=$(cd "$work" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') || return 1
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
  echo "$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
  cat >"$work/go.mod" <<MOD
module polylock.test/ferretdbbuild

go 1.24

require github.com/FerretDB/FerretDB $FERRETDB_VERSION

replace github.com/FerretDB/FerretDB => ./src
MOD
  printf 'package ferretdbbuild\n\nimport _ "github.com/FerretDB/FerretDB/cmd/ferretdb"\n' >"$work/deps.go"
  (cd "$work" && go mod tidy >&2 &&
    CGO_ENABLED=0 go build -trimpath -o "$out" github.com/FerretDB/FerretDB/cmd/ferretdb >&2)
}

ferretdb_bin() { go_build_cached ferretdb "$FERRETDB_VERSION" build_ferretdb; }

# port_open PORT: true once something accepts TCP connections on it.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# handler_of STATE_DIR: the handler `start` chose (sqlite for a STATE_DIR
# started before there was a choice).
handler_of() { cat "$1/handler" 2>/dev/null || echo sqlite; }

# launch STATE_DIR PORT: start the server on the handler STATE_DIR/handler
# names; wait (bounded) until it listens.
launch() {
  local state=$1 port=$2 storage
  case "$(handler_of "$state")" in
    # `_txlock=immediate`: SQLite transactions take the write lock when they
    # begin. With the default (deferred) a server under the suite's load got
    # stuck answering "database is locked (517 SQLITE_BUSY_SNAPSHOT)" to every
    # write after a few repeated conformance runs; with it, ten runs in a row
    # on one server saw none.
    sqlite) storage=(--handler=sqlite --sqlite-url="file:$state/data/?_txlock=immediate") ;;
    postgresql) storage=(--handler=postgresql --postgresql-url="$(cat "$state/postgresql-url")") ;;
    *) die "$state/handler: unknown handler '$(handler_of "$state")'" ;;
  esac
  "$(ferretdb_bin)" "${storage[@]}" \
      --listen-addr="127.0.0.1:$port" --state-dir="$state/state" \
      --debug-addr=- --telemetry=disable --log-level=warn \
      --test-capped-cleanup-interval=1s --test-capped-cleanup-percentage=50 \
      >"$state/ferretdb.log" 2>&1 &
  echo $! >"$state/ferretdb.pid"
  wait_for 60 "ferretdb ($(handler_of "$state")) on 127.0.0.1:$port" port_open "$port" ||
    { cat "$state/ferretdb.log" >&2; die "ferretdb did not start"; }
}

cmd=${1:-}
case "$cmd" in
  build) ferretdb_bin ;;
  start)
    state=${2:?state dir}
    handler=${3:-sqlite}
    case "$handler" in sqlite|postgresql) ;; *) die "unknown handler '$handler' (sqlite or postgresql)" ;; esac
    mkdir -p "$state/state"
    ferretdb_bin >/dev/null
    echo "$handler" >"$state/handler"
    if [ "$handler" = sqlite ]; then
      mkdir -p "$state/data"
    else
      bash "$here/postgres.sh" start "$state/postgres" ferretdb >"$state/postgresql-url"
    fi
    port=$(free_port)
    echo "$port" >"$state/port"
    launch "$state" "$port"
    echo "mongodb://127.0.0.1:$port/"
    ;;
  restart)
    state=${2:?state dir}
    stop_pidfile "$state/ferretdb.pid"
    if [ "$(handler_of "$state")" = postgresql ] &&
       ! bash "$here/postgres.sh" status "$state/postgres"; then
      bash "$here/postgres.sh" restart "$state/postgres"
    fi
    launch "$state" "$(cat "$state/port")"
    ;;
  stop)
    state=${2:?state dir}
    stop_pidfile "$state/ferretdb.pid"
    if [ "$(handler_of "$state")" = postgresql ]; then
      bash "$here/postgres.sh" stop "$state/postgres"
    fi
    ;;
  *) die "usage: ferretdb.sh build|start DIR [sqlite|postgresql]|restart DIR|stop DIR" ;;
esac

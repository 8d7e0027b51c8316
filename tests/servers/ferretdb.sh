#!/usr/bin/env bash
# Build (once, cached), start and stop a real FerretDB (MongoDB wire protocol,
# SQLite storage) for the tests.
#
#   ferretdb.sh build               print the path of the cached binary
#   ferretdb.sh start STATE_DIR     start on 127.0.0.1 (free port) with a fresh
#                                   data directory; print a mongodb:// URL
#
# FerretDB v1 trims capped collections only every minute, 10% at a time, by
# default; polylock's events collection then outgrows its cap and every
# tailing rescan slows down. The server here trims every second (the same
# flags are recommended in README.md for FerretDB deployments).
#   ferretdb.sh restart STATE_DIR   stop it and start it again (same port, same data)
#   ferretdb.sh stop STATE_DIR      stop it
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

# launch STATE_DIR PORT: start the server; wait (bounded) until it listens.
# `_txlock=immediate`: SQLite transactions take the write lock when they
# begin. With the default (deferred) a server under the suite's load got
# stuck answering "database is locked (517 SQLITE_BUSY_SNAPSHOT)" to every
# write after a few repeated conformance runs; with it, ten runs in a row
# on one server saw none.
launch() {
  local state=$1 port=$2
  "$(ferretdb_bin)" --handler=sqlite --sqlite-url="file:$state/data/?_txlock=immediate" \
      --listen-addr="127.0.0.1:$port" --state-dir="$state/state" \
      --debug-addr=- --telemetry=disable --log-level=warn \
      --test-capped-cleanup-interval=1s --test-capped-cleanup-percentage=50 \
      >"$state/ferretdb.log" 2>&1 &
  echo $! >"$state/ferretdb.pid"
  wait_for 60 "ferretdb on 127.0.0.1:$port" port_open "$port" ||
    { cat "$state/ferretdb.log" >&2; die "ferretdb did not start"; }
}

cmd=${1:-}
case "$cmd" in
  build) ferretdb_bin ;;
  start)
    state=${2:?state dir}
    mkdir -p "$state/data" "$state/state"
    ferretdb_bin >/dev/null
    port=$(free_port)
    echo "$port" >"$state/port"
    launch "$state" "$port"
    echo "mongodb://127.0.0.1:$port/"
    ;;
  restart)
    state=${2:?state dir}
    stop_pidfile "$state/ferretdb.pid"
    launch "$state" "$(cat "$state/port")"
    ;;
  stop)
    state=${2:?state dir}
    stop_pidfile "$state/ferretdb.pid"
    ;;
  *) die "usage: ferretdb.sh build|start DIR|restart DIR|stop DIR" ;;
esac

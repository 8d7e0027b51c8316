#!/usr/bin/env bash
# Start, restart and stop a real LDLM lock server (github.com/imoore76/ldlm
# v1.2.2, gRPC) for the tests. This script only runs a server binary that
# already exists; it never builds or downloads one (see README.md "LDLM" for
# where the binary comes from).
#
#   ldlm.sh bin                      print the server binary's path; exit 1
#                                    with a message if there is none
#   ldlm.sh path                     print where the binary is looked for
#                                    (whether or not it is there)
#   ldlm.sh start STATE_DIR          start a plain server; print ldlm://127.0.0.1:PORT
#   ldlm.sh start-password STATE_DIR start one that requires a password (made
#                                    here, throwaway, in STATE_DIR/password,
#                                    mode 600); print ldlm://127.0.0.1:PORT
#                                    (the URL carries no password)
#   ldlm.sh start-tls STATE_DIR      start one serving TLS; print
#                                    ldlms://127.0.0.1:PORT; the throwaway CA
#                                    and server certificate (SAN IP:127.0.0.1,
#                                    DNS:localhost) are STATE_DIR/certs/ca.pem,
#                                    server.pem, server-key.pem
#   ldlm.sh start-mtls STATE_DIR     like start-tls, and the server requires a
#                                    client certificate signed by ca.pem: one
#                                    is in STATE_DIR/certs/client.pem,
#                                    client-key.pem
#   ldlm.sh restart STATE_DIR        stop the server and start it again with
#                                    the same port and flags
#   ldlm.sh stop STATE_DIR           stop it
#
# STATE_DIR also holds: port, url (the URL printed by start*), args (the
# server flags after -l, as the first start chose them; restart reuses
# them), ldlm.pid, and ldlm.log (the server's stdout and stderr, appended to
# across restarts; tests read its "Lock request" lines to know a waiter
# reached the server).
#
# Environment:
#   POLYLOCK_LDLM_SERVER      the server binary (default
#                             ~/.cache/polylock/ldlm/v1.2.2/ldlm-server, under
#                             $POLYLOCK_CACHE when that is set)
#   POLYLOCK_LDLM_LOG_LEVEL   the server's --log_level (default info: the
#                             tests need its "Lock request" lines)
#   POLYLOCK_LDLM_EXTRA_ARGS  more server flags, split on spaces, e.g.
#                             "-g 1s -m 1s" (read at start, kept for restart)
#
# The server always gets -l 127.0.0.1:PORT, --ipc_socket_file "" (no IPC
# socket: a stale one would make it fail to start) and -r "" (no REST
# listener). It is ready once its log says "gRPC server started. Listening
# on 127.0.0.1:PORT" (printed even at warn level) and the port accepts TCP.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

# Passwords, keys and the args file (which holds the password) are private.
umask 077

LDLM_SERVER="${POLYLOCK_LDLM_SERVER:-$POLYLOCK_CACHE/ldlm/v1.2.2/ldlm-server}"

# ldlm_bin: print the binary's path, or fail saying where it was looked for.
ldlm_bin() {
  [ -x "$LDLM_SERVER" ] ||
    die "no LDLM server binary at $LDLM_SERVER (set POLYLOCK_LDLM_SERVER; see README.md \"LDLM\")"
  echo "$LDLM_SERVER"
}

# port_open PORT: true once something accepts TCP connections on it.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# alive STATE_DIR: true while the server in STATE_DIR/ldlm.pid runs.
alive() { [ -f "$1/ldlm.pid" ] && kill -0 "$(cat "$1/ldlm.pid")" 2>/dev/null; }

# listening STATE_DIR PORT OFFSET: true once the log after byte OFFSET says
# the server listens on PORT and the port accepts TCP connections.
listening() {
  local state=$1 port=$2 offset=$3
  tail -c +"$((offset + 1))" "$state/ldlm.log" |
    grep -qF "gRPC server started. Listening on 127.0.0.1:$port" &&
    port_open "$port"
}

# launch STATE_DIR: start the server with STATE_DIR/port and STATE_DIR/args
# in the background; wait (at most 30 s) until it is ready; if it exits or
# the time is up, show its log, stop it and return 1.
launch() {
  local state=$1 port offset bin deadline
  local -a args
  bin=$(ldlm_bin)
  port=$(cat "$state/port")
  eval "args=($(cat "$state/args"))"
  touch "$state/ldlm.log"
  offset=$(wc -c <"$state/ldlm.log")
  # In STATE_DIR, so anything the server writes to its working directory
  # lands there.
  (cd "$state" && exec "$bin" -l "127.0.0.1:$port" "${args[@]}") >>"$state/ldlm.log" 2>&1 &
  echo $! >"$state/ldlm.pid"
  deadline=$(( $(date +%s) + 30 ))
  until listening "$state" "$port" "$offset"; do
    if ! alive "$state" || [ "$(date +%s)" -ge "$deadline" ]; then
      tail -c +"$((offset + 1))" "$state/ldlm.log" >&2
      stop_pidfile "$state/ldlm.pid"
      echo "tests/servers: ldlm did not start on 127.0.0.1:$port (log: $state/ldlm.log)" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "tests/servers: ldlm on 127.0.0.1:$port ready" >&2
}

# start STATE_DIR SCHEME MODE_ARGS...: pick a port, store it, the flags and
# the URL in STATE_DIR, launch, print the URL. A port taken between
# free_port and the server's bind is replaced (three tries).
start() {
  local state=$1 scheme=$2; shift 2
  local port offset
  local -a extra
  ! alive "$state" || die "$state already has a running server (stop it first)"
  read -r -a extra <<<"${POLYLOCK_LDLM_EXTRA_ARGS:-}"
  printf '%q ' --ipc_socket_file "" -r "" --log_level "${POLYLOCK_LDLM_LOG_LEVEL:-info}" \
    "$@" ${extra[@]+"${extra[@]}"} >"$state/args"
  for _ in 1 2 3; do
    port=$(free_port)
    echo "$port" >"$state/port"
    echo "$scheme://127.0.0.1:$port" >"$state/url"
    touch "$state/ldlm.log"
    offset=$(wc -c <"$state/ldlm.log")
    if launch "$state"; then
      cat "$state/url"
      return 0
    fi
    tail -c +"$((offset + 1))" "$state/ldlm.log" | grep -q 'address already in use' || break
    echo "tests/servers: port $port was taken; trying another" >&2
  done
  die "ldlm did not start (log: $state/ldlm.log)"
}


cmd=${1:-}
case "$cmd" in
  bin) ldlm_bin ;;
  path) echo "$LDLM_SERVER" ;;
  start)
    state=${2:?state dir}
    mkdir -p "$state"
    ldlm_bin >/dev/null
    start "$state" ldlm
    ;;
  start-password)
    state=${2:?state dir}
    mkdir -p "$state"
    ldlm_bin >/dev/null
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$state/password"
    chmod 600 "$state/password"
    start "$state" ldlm --password "$(cat "$state/password")"
    ;;
  start-tls)
    state=${2:?state dir}
    mkdir -p "$state"
    ldlm_bin >/dev/null
    make_certs "$state/certs" no
    start "$state" ldlms --tls_cert "$state/certs/server.pem" --tls_key "$state/certs/server-key.pem"
    ;;
  start-mtls)
    state=${2:?state dir}
    mkdir -p "$state"
    ldlm_bin >/dev/null
    make_certs "$state/certs" yes
    start "$state" ldlms --tls_cert "$state/certs/server.pem" --tls_key "$state/certs/server-key.pem" \
      --client_ca "$state/certs/ca.pem"
    ;;
  restart)
    state=${2:?state dir}
    if [ ! -f "$state/port" ] || [ ! -f "$state/args" ]; then
      die "$state has no server to restart"
    fi
    stop_pidfile "$state/ldlm.pid"
    launch "$state" || die "ldlm did not restart (log: $state/ldlm.log)"
    ;;
  stop)
    state=${2:?state dir}
    stop_pidfile "$state/ldlm.pid"
    ;;
  *) die "usage: ldlm.sh bin|path|start DIR|start-password DIR|start-tls DIR|start-mtls DIR|restart DIR|stop DIR" ;;
esac

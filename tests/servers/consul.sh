#!/usr/bin/env bash
# Build (once, cached), start and stop real Consul agents for the tests.
#
#   consul.sh build                 print the path of the cached consul binary
#   consul.sh start STATE_DIR       start a dev agent; print its http URL
#   consul.sh start-acl STATE_DIR   start a dev agent with ACLs on (default
#                                   deny); print its http URL; the management
#                                   token is in STATE_DIR/acl.token
#   consul.sh start-tls STATE_DIR   start a dev agent serving HTTPS that
#                                   requires client certificates; print its
#                                   https URL; CA, server and client
#                                   certificates (made here, throwaway) are in
#                                   STATE_DIR/certs
#   consul.sh start-server STATE_DIR
#                                   start one persistent server (raft state on
#                                   disk, survives restarts); print its http URL
#   consul.sh start-cluster STATE_DIR
#                                   start three servers on 127.0.0.1; print the
#                                   http URLs, one per line
#   consul.sh restart STATE_DIR     restart the agent `start` or `start-server`
#                                   started (same ports, same flags)
#   consul.sh leader STATE_DIR      print the cluster leader's http URL
#   consul.sh kill-leader STATE_DIR kill -9 the cluster's leader; wait until the
#                                   two others elect a new one; print the
#                                   killed server's http URL
#   consul.sh revive STATE_DIR NAME start cluster member NAME (server1..3)
#                                   again after it was killed, with its ports,
#                                   flags and raft state; wait until it sees
#                                   a leader
#   consul.sh heal STATE_DIR        start again every cluster member that is
#                                   not running (revive), so the cluster has
#                                   all three; wait until each sees a leader
#   consul.sh stop STATE_DIR        stop whatever the commands above started
#
# POLYLOCK_CONSUL_MAX_CONNS sets the agents' http_max_conns_per_client (default
# 200, Consul's own default, which the tests rely on).
#
# The binary is built from the Go module proxy through a throwaway wrapper
# module (consul's own go.mod has local replace lines, so `go install` refuses
# it) and cached under ~/.cache/polylock/consul/<version>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

# v1.16.3: the newest 1.16 release whose published submodules all resolve
# from the module proxy (v1.16.4+ need unpublished or incompatible ones).
CONSUL_VERSION="${POLYLOCK_CONSUL_VERSION:-v1.16.3}"

build_consul() {
  local out=$1 work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  cat >"$work/go.mod" <<MOD
module polylock.test/consulbuild

go 1.21

require github.com/hashicorp/consul $CONSUL_VERSION

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
MOD
  printf 'package consulbuild\n\nimport _ "github.com/hashicorp/consul"\n' >"$work/deps.go"
  # The checksum database is not reachable from every build machine; the
  # wrapper only builds a throwaway test server, so it does without it.
  (cd "$work" && export GOSUMDB=off GOFLAGS=-mod=mod && go mod tidy >&2 &&
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out" github.com/hashicorp/consul >&2)
}

consul_bin() { go_build_cached consul "$CONSUL_VERSION" build_consul; }

# start_agent STATE_DIR NAME EXTRA_ARGS...: start one agent in the background,
# write its pid to STATE_DIR/NAME.pid and its http URL to STATE_DIR/NAME.url.
# Its ports and flags are kept in STATE_DIR/NAME.ports (HTTP, server, serf
# LAN, serf WAN; chosen here unless written before) and NAME.args, and
# reused when NAME is started again (restart).
start_agent() {
  local state=$1 name=$2; shift 2
  local http server lan wan
  mkdir -p "$state/$name"
  if [ -f "$state/$name.ports" ]; then
    read -r http server lan wan <"$state/$name.ports"
  else
    http=$(free_port) server=$(free_port) lan=$(free_port) wan=$(free_port)
    echo "$http $server $lan $wan" >"$state/$name.ports"
  fi
  [ -f "$state/$name.args" ] || printf '%q ' "$@" >"$state/$name.args"
  "$(consul_bin)" agent -bind=127.0.0.1 -client=127.0.0.1 -node="$name" \
    -http-port="$http" -dns-port=-1 -grpc-port=-1 -grpc-tls-port=-1 \
    -server-port="$server" -serf-lan-port="$lan" -serf-wan-port="$wan" \
    -hcl 'session_ttl_min = "1s"' \
    -hcl "limits { http_max_conns_per_client = ${POLYLOCK_CONSUL_MAX_CONNS:-200} }" \
    -log-level=warn "$@" \
    >>"$state/$name/agent.log" 2>&1 &
  echo $! >"$state/$name.pid"
  echo "http://127.0.0.1:$http" >"$state/$name.url"
}

# start_again STATE_DIR NAME: start agent NAME again with the ports and flags
# start_agent kept for it.
start_again() {
  local state=$1 name=$2 args
  eval "args=($(cat "$state/$name.args"))"
  start_agent "$state" "$name" "${args[@]}"
}

# leader_ready URL: true once the agent answers with an elected leader.
leader_ready() {
  local leader
  leader=$(curl -sf --max-time 2 "$1/v1/status/leader") || return 1
  [ -n "$leader" ] && [ "$leader" != '""' ]
}

# new_leader URL OLD: true once the agent at URL names a leader other than OLD.
new_leader() {
  local leader
  leader=$(curl -sf --max-time 2 "$1/v1/status/leader" | tr -d '"') || return 1
  [ -n "$leader" ] && [ "$leader" != "$2" ]
}

# leader_name STATE_DIR: print the name (server1..3) of the cluster's leader,
# asking the first live server.
leader_name() {
  local state=$1 leader= n server
  for n in 1 2 3; do
    [ -f "$state/server$n.pid" ] || continue
    leader=$(curl -sf --max-time 5 "$(cat "$state/server$n.url")/v1/status/leader" | tr -d '"') && break
  done
  for n in 1 2 3; do
    read -r _ server _ _ <"$state/server$n.ports"
    [ "$leader" = "127.0.0.1:$server" ] && { echo "server$n"; return 0; }
  done
  die "no cluster server is the leader (${leader:-none known})"
}

# await_leader STATE_DIR NAME SECONDS: wait until agent NAME has a leader;
# on failure show its log and exit.
await_leader() {
  local state=$1 name=$2 seconds=$3 url
  url=$(cat "$state/$name.url")
  wait_for "$seconds" "consul $name at $url" leader_ready "$url" ||
    { cat "$state/$name/agent.log" >&2; die "consul $name did not get a leader"; }
}

cmd=${1:-}
case "$cmd" in
  build) consul_bin ;;
  start)
    state=${2:?state dir}
    consul_bin >/dev/null
    start_agent "$state" dev -dev
    await_leader "$state" dev 60
    cat "$state/dev.url"
    ;;
  start-acl)
    state=${2:?state dir}
    consul_bin >/dev/null
    mkdir -p "$state"
    python3 -c 'import uuid; print(uuid.uuid4())' >"$state/acl.token"
    start_agent "$state" acl -dev -hcl "acl {
      enabled = true
      default_policy = \"deny\"
      tokens { initial_management = \"$(cat "$state/acl.token")\" }
    }"
    await_leader "$state" acl 60
    cat "$state/acl.url"
    ;;
  start-tls)
    state=${2:?state dir}
    bin=$(consul_bin)
    certs="$state/certs"
    mkdir -p "$certs"
    (cd "$certs" && "$bin" tls ca create >/dev/null &&
      "$bin" tls cert create -server -dc dc1 >/dev/null &&
      "$bin" tls cert create -client -dc dc1 >/dev/null) || die "making test certificates failed"
    https=$(free_port)
    start_agent "$state" tls -dev -hcl "ports { https = $https }" -hcl "tls {
      defaults {
        ca_file = \"$certs/consul-agent-ca.pem\"
        cert_file = \"$certs/dc1-server-consul-0.pem\"
        key_file = \"$certs/dc1-server-consul-0-key.pem\"
      }
      https { verify_incoming = true }
    }"
    await_leader "$state" tls 60
    echo "https://127.0.0.1:$https"
    ;;
  start-server)
    state=${2:?state dir}
    consul_bin >/dev/null
    start_agent "$state" server -server -bootstrap-expect=1 -data-dir="$state/server/data" \
      -hcl 'performance { raft_multiplier = 1 }'
    await_leader "$state" server 60
    cat "$state/server.url"
    ;;
  restart)
    state=${2:?state dir}
    name=$(basename "$(ls "$state"/*.args | head -n1)" .args)
    stop_pidfile "$state/$name.pid"
    start_again "$state" "$name"
    await_leader "$state" "$name" 60
    ;;
  leader)
    state=${2:?state dir}
    cat "$state/$(leader_name "$state").url"
    ;;
  kill-leader)
    state=${2:?state dir}
    victim=$(leader_name "$state")
    read -r _ server _ _ <"$state/$victim.ports"
    leader="127.0.0.1:$server"
    kill -9 "$(cat "$state/$victim.pid")"
    rm -f "$state/$victim.pid"
    for n in 1 2 3; do
      [ "server$n" = "$victim" ] && continue
      wait_for 90 "a new leader seen by server$n" new_leader "$(cat "$state/server$n.url")" "$leader" ||
        die "no new leader after killing $victim"
    done
    cat "$state/$victim.url"
    ;;
  revive)
    state=${2:?state dir} name=${3:?cluster member name}
    [ -f "$state/$name.args" ] || die "$state has no member $name"
    [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null &&
      die "$name is still running"
    start_again "$state" "$name"
    await_leader "$state" "$name" 90
    ;;
  start-cluster)
    state=${2:?state dir}
    consul_bin >/dev/null
    mkdir -p "$state"
    # Every member's ports first, so each can be told the others' serf
    # ports: it keeps retrying to join them until they listen (a one-shot
    # join right after starting them raced their start on a loaded machine:
    # refused, no leader).
    for n in 1 2 3; do
      [ -f "$state/server$n.ports" ] ||
        echo "$(free_port) $(free_port) $(free_port) $(free_port)" >"$state/server$n.ports"
    done
    for n in 1 2 3; do
      joins=()
      for m in 1 2 3; do
        [ "$n" = "$m" ] && continue
        read -r _ _ lan _ <"$state/server$m.ports"
        joins+=("-retry-join=127.0.0.1:$lan")
      done
      start_agent "$state" "server$n" -server -bootstrap-expect=3 \
        -data-dir="$state/server$n/data" -hcl 'performance { raft_multiplier = 1 }' \
        "${joins[@]}" -retry-interval=1s
    done
    for n in 1 2 3; do await_leader "$state" "server$n" 90; done
    cat "$state"/server*.url
    ;;
  heal)
    state=${2:?state dir}
    for n in 1 2 3; do
      pidfile="$state/server$n.pid"
      if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
      start_again "$state" "server$n"
    done
    for n in 1 2 3; do await_leader "$state" "server$n" 90; done
    ;;
  stop)
    state=${2:?state dir}
    for f in "$state"/*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
    ;;
  *) die "usage: consul.sh build|start DIR|start-acl DIR|start-tls DIR|start-server DIR|start-cluster DIR|restart DIR|leader DIR|kill-leader DIR|revive DIR NAME|heal DIR|stop DIR" ;;
esac

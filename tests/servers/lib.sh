# Shared helpers for the scripts in tests/servers/. Source it; do not run it.
# Every wait here is bounded; every server listens on 127.0.0.1 only.

POLYLOCK_CACHE="${POLYLOCK_CACHE:-$HOME/.cache/polylock}"

# die MESSAGE: print to stderr and exit non-zero.
die() { echo "tests/servers: $*" >&2; exit 1; }

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND every 0.2 s until it
# succeeds; fail after SECONDS.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  echo "tests/servers: $what ready" >&2
}

# go_build_cached NAME VERSION BUILD_FUNCTION: print the path of a binary cached
# under $POLYLOCK_CACHE/NAME/VERSION/, building it with BUILD_FUNCTION OUTPUT_PATH
# when absent. A lock file keeps concurrent callers from building twice.
go_build_cached() {
  local name=$1 version=$2 build=$3
  local dir="$POLYLOCK_CACHE/$name/$version"
  local bin="$dir/$name"
  if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    (
      flock -w 1800 9 || die "timed out waiting for another build of $name"
      if [ ! -x "$bin" ]; then
        echo "tests/servers: building $name $version (cached in $dir)" >&2
        "$build" "$bin.tmp" || die "building $name $version failed"
        mv "$bin.tmp" "$bin"
      fi
    ) 9>"$dir/.build.lock" || exit 1
  fi
  echo "$bin"
}

# stop_pidfile FILE: stop the process whose pid FILE holds (TERM, then KILL
# after 10 s), then remove FILE.
stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

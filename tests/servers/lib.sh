# Shared helpers for the scripts in tests/servers/. Source it; do not run it.
# Every wait here is bounded; every server listens on 127.0.0.1 only.

POLYLOCK_CACHE="${POLYLOCK_CACHE:-$HOME/.cache/polylock}"

# die MESSAGE: print to stderr and exit non-zero.
die() { echo "tests/servers: $*" >&2; exit 1; }

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now,
# below the kernel's ephemeral range (ip_local_port_range): a port the kernel
# hands out (bind to port 0) is also where outgoing connections get their
# local port, so one could take it between this pick and the server's bind
# ("address already in use"). Random, checked free by binding it, bounded.
free_port() {
  python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(200):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
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

# make_certs DIR CLIENT [CLIENT_CN]: a throwaway CA (ca.pem), a server
# certificate for 127.0.0.1 and localhost (server.pem, server-key.pem) and,
# when CLIENT is yes, a client certificate (client.pem, client-key.pem; its
# common name CLIENT_CN, default "polylock test client"), all signed by it.
make_certs() {
  local dir=$1 client=$2 client_cn=${3:-polylock test client}
  command -v openssl >/dev/null || die "openssl is missing (tests/install-deps.sh installs it)"
  mkdir -p "$dir"
  (
    cd "$dir"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca-key.pem
    openssl req -x509 -new -key ca-key.pem -sha256 -days 7 -subj "/CN=polylock test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
    # sign NAME CN EXTENSIONS: NAME-key.pem and NAME.pem signed by the CA.
    sign() {
      key "$1-key.pem"
      openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$1.csr"
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -sha256 -days 7 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign server localhost "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    if [ "$client" = yes ]; then
      sign client "$client_cn" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    fi
  ) || die "making test certificates in $dir failed"
}

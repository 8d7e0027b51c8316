"""The Python contender of the mixed-client fault suite (tests/mixed/run.sh
has the whole protocol; tests/mixed/contenders.sh installs the package).

    python contend.py run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
    python contend.py clock        print "python NS" (the clock probe)

One polylock.Client on URL; one Lock per name of NAMES ("NAME=LIMIT,...":
limit 1 a mutex, more a semaphore), made when first picked. Each round
(until the file STOP exists, then a "done" line): pick a name with
splitmix64 seeded by SEED; acquire (20 s timeout); register the lease's
on_lost callback; send "WRITE NAME TOKEN ID" to the fenced store on the
Unix socket STORE; hold HOLD_MS; write again; release. Every step is one
line "WHAT python PID ID NAME TOKEN T0 T1 RESULT" appended to LOG in one
write(2); T0/T1 are time.monotonic_ns(), which must be
clock_gettime(CLOCK_MONOTONIC) (checked at start).
"""

import os
import socket
import sys
import threading
import time

MONOTONIC = "clock_gettime(CLOCK_MONOTONIC)"
LANG = "python"
ACQUIRE_TIMEOUT_S = 20
CONNECT_FOR_S = 30
STORE_TRIES = 5
STORE_TIMEOUT_S = 5
MASK = (1 << 64) - 1


def check_clock() -> None:
    """Fails unless time.monotonic_ns() reads CLOCK_MONOTONIC."""
    implementation = time.get_clock_info("monotonic").implementation
    if implementation != MONOTONIC:
        sys.exit(f"contend (python): time.monotonic_ns() is {implementation}, not {MONOTONIC}")


class SplitMix64:
    """splitmix64, the PRNG every contender uses to pick names."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


class Log:
    """The history file, opened O_APPEND; each line is one os.write."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = str(os.getpid())

    def line(self, what, ident, name, token, t0, t1, result) -> None:
        text = f"{what} {LANG} {self.pid} {ident} {name} {token} {t0} {t1} {result}\n"
        data = text.encode()
        written = os.write(self.fd, data)
        if written != len(data):
            print(f"contend (python): short log write ({written} of {len(data)})", file=sys.stderr)


class Store:
    """A connection to the fenced store, reconnected when it fails."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = None
        self.buffer = b""
        self.reconnect()

    def reconnect(self) -> None:
        """Up to STORE_TRIES connection attempts, 50 ms apart."""
        self.close()
        for attempt in range(STORE_TRIES):
            if attempt:
                time.sleep(0.05)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(STORE_TIMEOUT_S)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                continue
            self.sock = sock
            return

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buffer = b""

    def write(self, name: str, token: str, ident: str) -> str:
        """One write: "ok", "stale" or "error" (then reconnected)."""
        if self.sock is None:
            self.reconnect()
            if self.sock is None:
                return "error"
        try:
            self.sock.sendall(f"WRITE {name} {token} {ident}\n".encode())
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("the store closed the connection")
                self.buffer += chunk
        except OSError:
            self.reconnect()
            return "error"
        reply, _, self.buffer = self.buffer.partition(b"\n")
        if reply == b"OK":
            return "ok"
        if reply.startswith(b"STALE"):
            return "stale"
        self.reconnect()
        return "error"


def kind(error: BaseException) -> str:
    """The error's stable kind (polylock's code, else the class name)."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else type(error).__name__.lower()


def connect(polylock, url: str):
    """A client, retrying connection errors for up to CONNECT_FOR_S."""
    deadline = time.monotonic() + CONNECT_FOR_S
    while True:
        try:
            return polylock.Client(url)
        except polylock.errors.ConnectionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def run(url, log_path, store_path, names_text, ttl_ms, hold_ms, seed, stop) -> None:
    import polylock
    import polylock.errors

    log = Log(log_path)
    names = []
    for entry in names_text.split(","):
        name, _, limit = entry.partition("=")
        names.append((name, int(limit)))
    ttl = int(ttl_ms) / 1000
    hold = int(hold_ms) / 1000
    rng = SplitMix64(int(seed))
    client = connect(polylock, url)
    store = Store(store_path)
    locks = {}
    seq = 0
    while True:
        if os.path.exists(stop):
            now = time.monotonic_ns()
            log.line("done", "-", "-", "-", now, now, "-")
            return
        seq += 1
        name, limit = names[rng.next() % len(names)]
        ident = f"{LANG}-{log.pid}-{seq}"
        lock = locks.get(name)
        if lock is None:
            lock = locks[name] = client.lock(name, ttl=ttl, limit=limit)

        t0 = time.monotonic_ns()
        try:
            lease = lock.acquire(timeout=ACQUIRE_TIMEOUT_S)
        except polylock.errors.LockTimeout:
            log.line("acquire", ident, name, "-", t0, time.monotonic_ns(), "timeout")
            continue
        except Exception as error:  # noqa: BLE001 - every failure is logged
            log.line("acquire", ident, name, "-", t0, time.monotonic_ns(), f"error:{kind(error)}")
            time.sleep(0.1)
            continue
        t1 = time.monotonic_ns()
        token = "-" if lease.fencing_token is None else str(lease.fencing_token)
        log.line("acquire", ident, name, token, t0, t1, "ok")

        # Lost: once per lease, never after a normal release.
        ended = threading.Event()
        ended_lock = threading.Lock()

        def on_lost(_event, ident=ident, name=name, token=token, ended=ended, ended_lock=ended_lock):
            with ended_lock:
                if ended.is_set():
                    return
                ended.set()
            now = time.monotonic_ns()
            log.line("lost", ident, name, token, now, now, "-")

        lease.on_lost(on_lost)

        for pause in (hold, None):
            t0 = time.monotonic_ns()
            result = store.write(name, token, ident)
            log.line("write", ident, name, token, t0, time.monotonic_ns(), result)
            if pause is not None:
                time.sleep(pause)

        for _ in range(2):
            t0 = time.monotonic_ns()
            try:
                lock.release()
            except polylock.errors.LockLost:
                log.line("release", ident, name, token, t0, time.monotonic_ns(), "lost")
                break
            except Exception as error:  # noqa: BLE001 - every failure is logged
                log.line("release", ident, name, token, t0, time.monotonic_ns(), f"error:{kind(error)}")
                continue
            t1 = time.monotonic_ns()
            with ended_lock:
                ended.set()
            log.line("release", ident, name, token, t0, t1, "ok")
            break
        else:
            # Still held: a new handle next time (the handle holds one lease
            # at a time); dropping this one releases it in the background.
            del locks[name]


def main() -> None:
    check_clock()
    args = sys.argv[1:]
    if args == ["clock"]:
        print(f"{LANG} {time.monotonic_ns()}")
        return
    if len(args) != 9 or args[0] != "run":
        sys.exit("usage: contend.py run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | contend.py clock")
    run(*args[1:])


if __name__ == "__main__":
    main()

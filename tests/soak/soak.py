"""The Python load process of the soak test (tests/soak/run.sh): drives every
backend given on the command line through the polylock package (blocking
API, one thread per worker) until STOP_FILE exists or MAX_SECONDS pass, and
appends its counters to STATS_FILE every few seconds. The workload and the
stats line format are the same in every language (tests/soak/README.md).
The Python package has no lock-event watch, so there is no watcher here.

    python soak.py STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...
"""

import os
import random
import sys
import threading
import time

import polylock
from polylock import errors

LANG = "python"
STATS_EVERY = 5.0
WAIT = 60.0
LEASE_TTL = 3.0
LEASE_HOLD = 8.0
SEM_LIMIT = 3
MAX_ERROR_LINES = 50
PAUSE = int(os.environ.get("POLYLOCK_SOAK_PAUSE_MS", "1000")) / 1000

stop = threading.Event()
error_lines = [0]
print_lock = threading.Lock()
COUNTERS = ("ops", "lost", "lost_after_release", "errors", "waits", "long_holds", "connects", "watch_events")


class Backend:
    def __init__(self, name, url, run):
        self.name = name
        self.url = url
        self.run = run
        self.lock = threading.Lock()
        self.counts = {key: 0 for key in COUNTERS}

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def error(self, what, err):
        self.add("errors")
        with print_lock:
            error_lines[0] += 1
            if error_lines[0] <= MAX_ERROR_LINES:
                print(f"soak ({LANG}): {self.name}: {what}: {err!r}", file=sys.stderr, flush=True)

    def lost_lease(self, name):
        self.add("lost")
        print(f"soak ({LANG}): {self.name}: lease on {name} lost", file=sys.stderr, flush=True)

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


class Loss:
    """What a lock's lost listener saw: a loss of the lease held now, or a
    loss reported for a lease whose release had begun (or an earlier one):
    a release that succeeds means that lease was not lost, the report is
    spurious (lost_after_release)."""

    def __init__(self, b, lock):
        self.holder = None
        self.releasing = True
        self.lost = False
        b_name = b.name

        def on_lost(event):
            late = self.releasing or event.holder != self.holder
            print(f"soak ({LANG}): {b_name}: lost callback{' after release began' if late else ''}: "
                  f"{event.name} holder {event.holder}: {event.reason}", file=sys.stderr, flush=True)
            if late:
                b.add("lost_after_release")
            else:
                self.lost = True

        lock.on_lost(on_lost)

    def held(self, lease):
        self.lost = False
        self.holder = lease.holder
        self.releasing = False


def release(b, lock, loss):
    """Releases LOCK's lease, counting a loss (seen while held, or by the release) once."""
    loss.releasing = True
    try:
        lock.release()
        b.add("ops", 2)
    except errors.LockLost as err:
        print(f"soak ({LANG}): {b.name}: release of {lock.name}: {err}", file=sys.stderr, flush=True)
        loss.lost = True
    except Exception as err:  # noqa: BLE001 - counted, the soak goes on
        b.error("release", err)
    if loss.lost:
        b.lost_lease(lock.name)


def hold_shared(b, lock, hold, loss):
    began = time.monotonic()
    try:
        lease = lock.acquire(timeout=WAIT)
    except Exception as err:  # noqa: BLE001
        b.error(f"acquire {lock.name}", err)
        return
    loss.held(lease)
    if time.monotonic() - began >= 0.01:
        b.add("waits")
    time.sleep(hold)
    release(b, lock, loss)


def cycles(b, client, worker):
    try:
        own = client.lock(f"soak/{b.run}/{LANG}/w{worker}/u")
        mutex = client.lock(f"soak/{b.run}/mutex")
        sem = client.lock(f"soak/{b.run}/sem", limit=SEM_LIMIT)
    except Exception as err:  # noqa: BLE001
        b.error("lock", err)
        return
    own_lost = Loss(b, own)
    mutex_lost = Loss(b, mutex)
    sem_lost = Loss(b, sem)
    rounds = 0
    while not stop.is_set():
        rounds += 1
        for _ in range(3):
            try:
                lease = own.try_acquire()
            except Exception as err:  # noqa: BLE001
                b.error("try_acquire", err)
                continue
            if lease is None:
                b.error("try_acquire", f"{own.name} busy")
                continue
            own_lost.held(lease)
            release(b, own, own_lost)
        hold_shared(b, mutex, 0.02 + random.random() * 0.06, mutex_lost)
        hold_shared(b, sem, 0.05 + random.random() * 0.1, sem_lost)
        if worker == 0 and rounds % 3 == 0:
            connect_cycle(b)
        stop.wait(PAUSE + random.random() * PAUSE / 2)


def connect_cycle(b):
    try:
        client = polylock.Client(b.url)
        lock = client.lock(f"soak/{b.run}/{LANG}/connect")
        loss = Loss(b, lock)
        lease = lock.try_acquire()
        if lease is None:
            b.error("connect try_acquire", "busy")
        else:
            loss.held(lease)
            release(b, lock, loss)
        del lock, client
        b.add("connects")
    except Exception as err:  # noqa: BLE001
        b.error("connect", err)


def long_leases(b, client):
    try:
        lock = client.lock(f"soak/{b.run}/{LANG}/lease", ttl=LEASE_TTL)
    except Exception as err:  # noqa: BLE001
        b.error("lock", err)
        return
    loss = Loss(b, lock)
    while not stop.is_set():
        try:
            lease = lock.acquire(timeout=WAIT)
        except Exception as err:  # noqa: BLE001
            b.error("acquire lease", err)
            stop.wait(1)
            continue
        loss.held(lease)
        full = not stop.wait(LEASE_HOLD)
        if not lock.is_held:
            print(f"soak ({LANG}): {b.name}: {lock.name} not held at the end", file=sys.stderr, flush=True)
            loss.lost = True
        release(b, lock, loss)
        if full:
            b.add("long_holds")
        stop.wait(1)


def write_stats(path, backends):
    now = time.time()
    lines = []
    for b in backends:
        counts = b.snapshot()
        fields = "\t".join(f"{key}={counts[key]}" for key in COUNTERS)
        lines.append(f"{now:.3f}\t{b.name}\t{fields}\n")
    with open(path, "a") as out:
        out.write("".join(lines))


def main():
    stats, stop_file, run, max_seconds, *specs = sys.argv[1:]
    backends = []
    threads = []
    for spec in specs:
        name, url = spec.split("=", 1)
        b = Backend(name, url, run)
        client = polylock.Client(url)
        for worker in range(2):
            threads.append(threading.Thread(target=cycles, args=(b, client, worker), daemon=True))
        threads.append(threading.Thread(target=long_leases, args=(b, client), daemon=True))
        backends.append(b)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + float(max_seconds)
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        write_stats(stats, backends)
        time.sleep(STATS_EVERY)
    stop.set()
    for thread in threads:
        thread.join(timeout=WAIT + 30)
        if thread.is_alive():
            backends[0].error("stop", f"thread {thread.name} still running")
    write_stats(stats, backends)


if __name__ == "__main__":
    main()

"""The LDLM peer of polylock's benchmark harness (bench/run.sh): py-ldlm
(PyPI), the LDLM project's own Python client, measured on the scenarios of
core/benches/scenarios.rs it supports, printed as text and appended as JSON
lines (backend "ldlm", subject "py-ldlm", metric, value) to
POLYLOCK_BENCH_JSON.

    python bench.py ldlm://127.0.0.1:3144        (or HOST:PORT)

Used as a user would: `Client(address)`, `lock(name, wait_timeout_seconds,
lock_timeout_seconds)` / `try_lock` and `Lock.unlock()`, with polylock's
default TTL (lock_timeout_seconds=15) and py-ldlm's default auto-renewal (a
timer thread per held lock, as polylock's keeper renews its leases), and
retries=0 so that a failed call counts as an error instead of being retried
every 5 s.

gRPC clients in one process may share one HTTP/2 connection, and the server
takes a connection for a session: every contender, and the handoff's
waiter, is a process of its own (spawned, so none inherits gRPC state), like
polylock's bench gives each its own Client and connection.

Knobs: POLYLOCK_BENCH_ITERATIONS (latency samples, default 200),
POLYLOCK_BENCH_SECONDS (throughput window, default 5),
POLYLOCK_BENCH_HANDOFF_SETTLE_MS (pause between the waiter's call going out
and the release, outside the sample, default 10, as polylock's bench).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import sys
import time

BACKEND = "ldlm"
SUBJECT = "py-ldlm"
WARMUP = 20
TTL = 15  # polylock's default TTL, in seconds
WAIT = 10  # what the uncontended acquire may wait (polylock's bench: 10 s)


def knob(name, default):
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def emit(metric, value):
    print(f"{BACKEND:<8} {SUBJECT:<22} {metric:<32} {value:>14.1f}", flush=True)
    path = os.environ.get("POLYLOCK_BENCH_JSON")
    if path:
        line = json.dumps({"backend": BACKEND, "subject": SUBJECT, "metric": metric, "value": value})
        with open(path, "a") as f:
            f.write(line + "\n")


def percentiles(samples):
    """p50 and p99, the way scenarios.rs takes them."""
    s = sorted(samples)
    return s[len(s) // 2], s[min(len(s) - 1, len(s) * 99 // 100)]


def address_of(arg):
    return arg.split("://", 1)[1].rstrip("/") if "://" in arg else arg


def client(address):
    from ldlm import Client

    c = Client(address, retries=0)
    # The channel connects on its first call: make it before any timing.
    warm = c.try_lock(f"bench/py-ldlm-warm-{os.getpid()}-{time.monotonic_ns()}")
    warm.unlock()
    return c


def run_id():
    return f"{os.getpid()}-{time.time_ns()}"


def uncontended(address, iterations):
    c = client(address)
    for what, take in [
        ("uncontended", lambda name: c.lock(name, wait_timeout_seconds=WAIT, lock_timeout_seconds=TTL)),
        ("uncontended_try", lambda name: c.try_lock(name, lock_timeout_seconds=TTL)),
    ]:
        name = f"bench/py-ldlm-{what}-{run_id()}"
        samples = []
        for i in range(WARMUP + iterations):
            started = time.perf_counter_ns()
            lock = take(name)
            if not lock:
                raise RuntimeError(f"{what}: the lock was not free")
            lock.unlock()
            if i >= WARMUP:
                samples.append((time.perf_counter_ns() - started) / 1000)
        p50, p99 = percentiles(samples)
        emit(f"{what}_p50_us", p50)
        emit(f"{what}_p99_us", p99)
    c.close()


def handoff_waiter(address, name, conn):
    """The handoff's waiter, in a process (and so a connection) of its own."""
    c = client(address)
    conn.send("ready")
    while conn.recv() == "go":
        conn.send("calling")
        lock = c.lock(name, wait_timeout_seconds=60, lock_timeout_seconds=TTL)
        got = time.monotonic_ns()  # CLOCK_MONOTONIC: the same clock in both processes
        if not lock:
            conn.send(None)
            return
        lock.unlock()
        conn.send(got)
    c.close()


def handoff(address, iterations):
    name = f"bench/py-ldlm-handoff-{run_id()}"
    settle = knob("POLYLOCK_BENCH_HANDOFF_SETTLE_MS", 10) / 1000
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    waiter = ctx.Process(target=handoff_waiter, args=(address, name, theirs))
    waiter.start()
    assert ours.recv() == "ready"
    holder = client(address)
    samples = []
    for i in range(WARMUP // 4 + iterations):
        lock = holder.try_lock(name, lock_timeout_seconds=TTL)
        if not lock:
            raise RuntimeError("handoff: the holder's lock was not free")
        ours.send("go")
        assert ours.recv() == "calling"
        # Let the server park the waiter's call (outside the sample).
        time.sleep(settle)
        released = time.monotonic_ns()
        lock.unlock()
        got = ours.recv()
        if got is None:
            raise RuntimeError("handoff: the waiter timed out")
        if i >= WARMUP // 4:
            samples.append((got - released) / 1000)
    ours.send("stop")
    waiter.join()
    holder.close()
    p50, p99 = percentiles(samples)
    emit("handoff_p50_us", p50)
    emit("handoff_p99_us", p99)


def contender(address, name, conn):
    """One contender of the throughput scenario, a process of its own."""
    import grpc

    c = client(address)
    conn.send("ready")
    start_at, end_at = conn.recv()
    time.sleep(max(0.0, start_at - time.monotonic()))
    done = errors = 0
    while True:
        left = end_at - time.monotonic()
        if left <= 0:
            break
        try:
            # The server's wait limit is whole seconds; acquisitions that end
            # after the window are not counted.
            lock = c.lock(name, wait_timeout_seconds=max(1, math.ceil(left)), lock_timeout_seconds=TTL)
        except grpc.RpcError as e:
            print(f"py-ldlm contender: lock failed: {e}", file=sys.stderr)
            errors += 1
            continue
        if not lock:
            break
        lock.unlock()
        if time.monotonic() <= end_at:
            done += 1
    conn.send((done, errors))
    c.close()


def contended(address, contenders, seconds):
    name = f"bench/py-ldlm-contended-{contenders}-{run_id()}"
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in range(contenders):
        ours, theirs = ctx.Pipe()
        p = ctx.Process(target=contender, args=(address, name, theirs))
        p.start()
        pipes.append(ours)
        procs.append(p)
    for conn in pipes:
        assert conn.recv() == "ready"
    # Everyone is connected: start together, a moment from now.
    start_at = time.monotonic() + 0.5
    for conn in pipes:
        conn.send((start_at, start_at + seconds))
    results = [conn.recv() for conn in pipes]
    for p in procs:
        p.join()
    done = sum(d for d, _ in results)
    errors = sum(e for _, e in results)
    return done / seconds, errors


def main(argv):
    if len(argv) != 1:
        print("usage: python bench.py ldlm://HOST:PORT", file=sys.stderr)
        return 2
    address = address_of(argv[0])
    iterations = int(knob("POLYLOCK_BENCH_ITERATIONS", 200))
    seconds = knob("POLYLOCK_BENCH_SECONDS", 5)
    uncontended(address, iterations)
    handoff(address, min(iterations, 100))
    for n in (16, 64):
        rate, errors = contended(address, n, seconds)
        emit(f"throughput_{n}_contenders_per_s", rate)
        emit(f"errors_{n}_contenders", errors)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

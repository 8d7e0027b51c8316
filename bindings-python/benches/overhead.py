"""Python vs native Rust: median try_acquire + release per backend. The
Rust side (core/benches/try_acquire_release.rs, blocking API) and the
Python loop run alternately in chunks, so server drift hits both alike.

    bench/overheads.sh   (or: tests/with-servers.sh python bindings-python/benches/overhead.py)

Backends: memory:// and, when set, POLYLOCK_TEST_CONSUL_URL and
POLYLOCK_TEST_FERRETDB_URL. POLYLOCK_BENCH_ITERATIONS sets the samples per
side and backend. Prints a Markdown table of medians and ratios."""

import os
import statistics
import subprocess
import time
from pathlib import Path

import polylock

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = int(os.environ.get("POLYLOCK_BENCH_ITERATIONS", "2000"))
CHUNKS = 5
WARMUP = 20


BUSY = {}


def python_samples(url: str, count: int) -> list:
    lock = polylock.Client(url).lock(f"bench/py-try-acquire-{os.getpid()}")
    samples = []
    for i in range(WARMUP + count):
        started = time.perf_counter()
        # A try that finds the lock busy (it should not: nobody else takes
        # it) is counted and shown, not released.
        if lock.try_acquire() is None:
            BUSY[url] = BUSY.get(url, 0) + 1
            continue
        lock.release()
        if i >= WARMUP:
            samples.append((time.perf_counter() - started) * 1e6)
    return samples


def rust_samples(url: str, count: int) -> list:
    env = dict(os.environ, POLYLOCK_BENCH_ITERATIONS=str(count))
    out = subprocess.run(
        ["cargo", "bench", "-q", "--locked", "-p", "polylock", "--bench", "try_acquire_release", "--", url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["samples", url]:
            return [float(v) for v in parts[2:]]
    raise RuntimeError(f"no samples for {url} in: {out!r}")


def main() -> None:
    urls = ["memory://"] + [
        os.environ[var]
        for var in ("POLYLOCK_TEST_CONSUL_URL", "POLYLOCK_TEST_FERRETDB_URL", "POLYLOCK_TEST_POSTGRES_URL")
        if os.environ.get(var)
    ]
    per_chunk = max(1, ITERATIONS // CHUNKS)
    print(f"try_acquire + release, {per_chunk * CHUNKS} samples per side, {CHUNKS} alternating chunks, medians (µs)\n")
    print("| backend | Python | native Rust (blocking API) | Python / Rust |")
    print("|---|---|---|---|")
    for url in urls:
        ours, native = [], []
        for _ in range(CHUNKS):
            native += rust_samples(url, per_chunk)
            ours += python_samples(url, per_chunk)
        py, rs = statistics.median(ours), statistics.median(native)
        print(f"| {url.split('://')[0]} | {py:.1f} | {rs:.1f} | {py / rs:.2f} |", flush=True)
    for url, busy in BUSY.items():
        print(f"\n{url.split('://')[0]}: {busy} tries found the lock busy (no other holder)")


if __name__ == "__main__":
    main()

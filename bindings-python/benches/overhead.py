"""Python vs native Rust: median try_acquire + release per backend, in one
run (the Rust side is core/benches/try_acquire_release.rs, run first).

    tests/bench.sh   (or: tests/with-servers.sh python bindings-python/benches/overhead.py)

Backends: memory:// and, when set, POLYLOCK_TEST_CONSUL_URL and
POLYLOCK_TEST_FERRETDB_URL. POLYLOCK_BENCH_ITERATIONS sets the samples.
Prints a Markdown table of medians and ratios."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polylock

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = int(os.environ.get("POLYLOCK_BENCH_ITERATIONS", "2000"))
WARMUP = 50


def python_median_us(url: str) -> float:
    lock = polylock.Client(url).lock(f"bench/py-try-acquire-{os.getpid()}")
    samples = []
    for i in range(WARMUP + ITERATIONS):
        started = time.perf_counter()
        lock.try_acquire()
        lock.release()
        if i >= WARMUP:
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    urls = ["memory://"] + [
        os.environ[var]
        for var in ("POLYLOCK_TEST_CONSUL_URL", "POLYLOCK_TEST_FERRETDB_URL")
        if os.environ.get(var)
    ]
    native = subprocess.run(
        ["cargo", "bench", "-q", "--locked", "-p", "polylock", "--bench", "try_acquire_release", "--", *urls],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rust = {}
    for line in native.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "native":
            rust[parts[1]] = float(parts[3])
    print(f"try_acquire + release, {ITERATIONS} samples each, medians (µs)\n")
    print("| backend | Python | native Rust | Python / Rust |")
    print("|---|---|---|---|")
    for url in urls:
        ours = python_median_us(url)
        scheme = url.split("://")[0]
        print(f"| {scheme} | {ours:.1f} | {rust[url]:.1f} | {ours / rust[url]:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""A Python contender for the mixed-client run (tests/mixed/run.sh): takes the
lock NAME on URL ROUNDS times through the polylock package and, inside each
hold, appends "start python TOKEN NS", holds it HOLD_MS milliseconds (the
workload), then appends "end python TOKEN NS" to LOG. TOKEN is the fencing
token, "-" when the backend has none (LDLM); NS is time.monotonic_ns(),
which must be clock_gettime(CLOCK_MONOTONIC) (checked at start), the clock
every contender reads (tests/mixed/check.py).

    python contend.py URL NAME ROUNDS LOG HOLD_MS
    python contend.py clock        print "python NS" (the clock probe)
"""

import sys
import time

MONOTONIC = "clock_gettime(CLOCK_MONOTONIC)"


def check_clock() -> None:
    """Fails unless time.monotonic_ns() reads CLOCK_MONOTONIC."""
    implementation = time.get_clock_info("monotonic").implementation
    if implementation != MONOTONIC:
        sys.exit(f"contend (python): time.monotonic_ns() is {implementation}, not {MONOTONIC}")


def record(log: str, what: str, token) -> None:
    """Appends "WHAT python TOKEN NS" to LOG in one write."""
    token_text = "-" if token is None else str(token)
    line = f"{what} python {token_text} {time.monotonic_ns()}\n"
    with open(log, "a") as out:
        out.write(line)


def main() -> None:
    check_clock()
    if sys.argv[1:] == ["clock"]:
        print(f"python {time.monotonic_ns()}")
        return
    import polylock

    url, name, rounds, log, hold_ms = sys.argv[1:]
    lock = polylock.Client(url).lock(name)
    for _ in range(int(rounds)):
        lease = lock.acquire(timeout=120)
        record(log, "start", lease.fencing_token)
        time.sleep(int(hold_ms) / 1000)
        record(log, "end", lease.fencing_token)
        lock.release()


if __name__ == "__main__":
    main()

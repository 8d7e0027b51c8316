"""The py-ldlm contender for the mixed-client run on LDLM (tests/mixed/run.sh):
the LDLM project's own Python client (PyPI py-ldlm 1.1.3, module `ldlm`)
takes the lock NAME on ldlm://HOST:PORT ROUNDS times and, inside each hold,
appends "start py-ldlm - NS", holds it HOLD_MS milliseconds (the workload),
then appends "end py-ldlm - NS" to LOG (LDLM has no fencing token: "-").
NS is time.monotonic_ns(), which must be clock_gettime(CLOCK_MONOTONIC)
(checked at start), the clock every contender reads (tests/mixed/check.py).

Each lock gets a lock timeout (LOCK_TIMEOUT_SECONDS), so a contender that
dies holding it frees it after that long at most, and no auto-renewal:
py-ldlm renews every max(timeout - 30 s, 10 s), which for a short timeout is
no sooner than the timeout itself, and a hold of HOLD_MS needs no renewal.
Waits are bounded (WAIT_TIMEOUT_SECONDS), and so are py-ldlm's retries.

    python contend_ldlm.py ldlm://HOST:PORT NAME ROUNDS LOG HOLD_MS
    python contend_ldlm.py clock        print "py-ldlm NS" (the clock probe)
"""

import sys
import time
from urllib.parse import urlsplit

MONOTONIC = "clock_gettime(CLOCK_MONOTONIC)"
LOCK_TIMEOUT_SECONDS = 10
WAIT_TIMEOUT_SECONDS = 120


def check_clock() -> None:
    """Fails unless time.monotonic_ns() reads CLOCK_MONOTONIC."""
    implementation = time.get_clock_info("monotonic").implementation
    if implementation != MONOTONIC:
        sys.exit(f"contend (py-ldlm): time.monotonic_ns() is {implementation}, not {MONOTONIC}")


def address(url: str) -> str:
    """HOST:PORT of a plain ldlm:// URL (all this contender supports)."""
    parts = urlsplit(url)
    if parts.scheme != "ldlm" or not parts.hostname or parts.password or parts.query:
        sys.exit(f"contend (py-ldlm): only plain ldlm://HOST:PORT URLs, not {parts.scheme}://…")
    return f"{parts.hostname}:{parts.port or 3144}"


def record(log: str, what: str) -> None:
    """Appends "WHAT py-ldlm - NS" to LOG in one write."""
    line = f"{what} py-ldlm - {time.monotonic_ns()}\n"
    with open(log, "a") as out:
        out.write(line)


def main() -> None:
    check_clock()
    if sys.argv[1:] == ["clock"]:
        print(f"py-ldlm {time.monotonic_ns()}")
        return
    import ldlm

    url, name, rounds, log, hold_ms = sys.argv[1:]
    client = ldlm.Client(address(url), retries=3, retry_delay_seconds=1, auto_renew_locks=False)
    try:
        for _ in range(int(rounds)):
            lock = client.lock(
                name,
                wait_timeout_seconds=WAIT_TIMEOUT_SECONDS,
                lock_timeout_seconds=LOCK_TIMEOUT_SECONDS,
            )
            if not lock.locked:
                sys.exit(f"contend (py-ldlm): {name} stayed busy for {WAIT_TIMEOUT_SECONDS} s")
            record(log, "start")
            time.sleep(int(hold_ms) / 1000)
            record(log, "end")
            lock.unlock()
    finally:
        client.close()


if __name__ == "__main__":
    main()

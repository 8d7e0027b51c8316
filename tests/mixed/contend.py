"""A Python contender for the mixed-client run (tests/mixed/run.sh): takes the
lock NAME on URL ROUNDS times and, inside each hold, appends "start python
TOKEN" and "end python TOKEN" lines to LOG.

    python contend.py URL NAME ROUNDS LOG
"""

import sys

import polylock


def main() -> None:
    url, name, rounds, log = sys.argv[1:]
    lock = polylock.Client(url).lock(name)
    for _ in range(int(rounds)):
        lease = lock.acquire(timeout=120)
        with open(log, "a") as out:
            out.write(f"start python {lease.fencing_token}\n")
            out.flush()
            out.write(f"end python {lease.fencing_token}\n")
        lock.release()


if __name__ == "__main__":
    main()

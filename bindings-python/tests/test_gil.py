"""The GIL held for a long time (one long C call) stalls no polylock runtime
worker: results for Python wait on the binding's delivery thread, and
leases go on being renewed. The hold is a pathological regular expression
(`(a+)+$` on "aaa…ab": sre never lets go of the GIL), its length calibrated
here; time is measured only to calibrate, never asserted."""

import asyncio
import re
import threading
import time

import polylock

# core/src/options.rs MIN_TTL: the shortest TTL, renewed every third of it.
MIN_TTL = 1.0
BOUND = 60
PATTERN = re.compile(r"(a+)+$")


def hold_the_gil(n):
    """One C call that holds the GIL; each extra n doubles its length.
    Returns how long it took."""
    started = time.perf_counter()
    assert PATTERN.match("a" * n + "b") is None
    return time.perf_counter() - started


def calibrated(at_least):
    """An n whose hold_the_gil(n) lasts about `at_least` seconds or more."""
    n = 10
    took = hold_the_gil(n)
    for _ in range(30):  # doubling: n += 1 doubles the time
        if took >= at_least / 16:
            break
        n += 1
        took = hold_the_gil(n)
    while took < at_least and n < 64:
        n, took = n + 1, took * 2
    return n


def test_a_long_gil_hold_stalls_no_renewal(name):
    client = polylock.Client("memory://py-gil")
    lock = client.lock(name, ttl=MIN_TTL)
    lease = lock.acquire(timeout=BOUND)
    n = calibrated(3 * MIN_TTL)
    others = [client.lock(f"{name}/{i}", ttl=30) for i in range(8)]

    async def main():
        for other in others:
            await other.acquire_async(timeout=BOUND)
        for extra in range(5):  # longer if the calibration guessed short
            # Results due while the GIL is held: had each one waited for the
            # GIL on a runtime worker, the workers (two) would all be stuck,
            # and the lease's renewals with them.
            pending = [other.renew_async() for other in others]
            took = hold_the_gil(n + extra)
            await asyncio.gather(*pending)
            if took >= 3 * MIN_TTL:
                break
        assert took >= 3 * MIN_TTL, "calibration: the hold must outlast three TTLs"
        for other in others:
            await other.release_async()

    asyncio.run(asyncio.wait_for(main(), 300))
    assert lease.is_held and lock.is_held
    lock.release()  # not LockLost


def test_an_awaited_acquisition_completes_while_another_thread_holds_the_gil(name):
    n = calibrated(0.5)

    async def main():
        client = polylock.Client("memory://py-gil")
        holder = client.lock(name)
        holder.acquire(timeout=BOUND)
        waiter = client.lock(name)
        parked = asyncio.Event()
        task = asyncio.ensure_future(waiter.acquire_async(timeout=BOUND, on_wait_started=parked.set))
        await asyncio.wait_for(parked.wait(), BOUND)

        def release_and_hog():
            holder.release()  # the grant is made as this thread takes the GIL back
            hold_the_gil(n)

        hog = threading.Thread(target=release_and_hog)
        hog.start()
        lease = await asyncio.wait_for(task, BOUND)
        hog.join(BOUND)
        assert not hog.is_alive()
        assert lease.is_held
        await waiter.release_async()

    asyncio.run(asyncio.wait_for(main(), 300))

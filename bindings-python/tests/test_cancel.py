"""Cancelling acquisitions: an asyncio cancel racing a grant, a cancel once
the wait is parked, `Lock.cancel()` from another thread or task. Whatever
wins, nothing stays held behind the caller's back and the lock object
acquires again. Parked waits are awaited through `on_wait_started`, never
by sleeping."""

import asyncio
import threading

import pytest

import polylock

BOUND = 60
# Short: where the server waits (LDLM), a grant it made as the wait was
# cancelled (before it saw the cancel) stands until its lock timer (one
# TTL) frees it; what follows a cancel there waits for the lock, bounded.
TTL = 5


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 300))


async def cancelled_or_lease(task):
    """The task's lease, or None if it was cancelled."""
    try:
        return await task
    except asyncio.CancelledError:
        return None


async def assert_free(client, name, lock):
    """Nobody holds `name` (a grant that lost the race to a cancel is
    released in the background: waited for, bounded), and `lock` takes it."""
    assert not lock.is_held
    probe = client.lock(name)
    assert await probe.acquire_async(timeout=BOUND)
    await probe.release_async()
    assert await lock.try_acquire_async() is not None
    await lock.release_async()


def test_a_cancel_racing_a_grant_leaves_nothing_held(url, name):
    rounds = 60 if url.startswith("memory://") else 15

    async def main():
        client = polylock.Client(url)
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            # A free lock: cancelled right after the task's first step
            # started the acquisition (the loop runs callbacks in order).
            lock = client.lock(name, ttl=TTL)
            task = asyncio.ensure_future(lock.acquire_async(timeout=BOUND))
            loop.call_soon(task.cancel)
            lease = await cancelled_or_lease(task)
            if lease:
                assert lock.is_held
                await lock.release_async()
            await assert_free(client, name, lock)

            # A busy lock: its holder lets go as the parked waiter is cancelled.
            holder = client.lock(name)
            await holder.acquire_async(timeout=BOUND)
            parked = asyncio.Event()
            waiter = client.lock(name, ttl=TTL)
            task = asyncio.ensure_future(waiter.acquire_async(timeout=BOUND, on_wait_started=parked.set))
            await asyncio.wait_for(parked.wait(), BOUND)
            released = holder.release_async()  # under way on polylock's runtime
            task.cancel()
            lease = await cancelled_or_lease(task)
            await released
            if lease:
                await waiter.release_async()
            await assert_free(client, name, waiter)

    run(main())


def test_a_cancelled_wait_takes_nothing(name):
    """memory://, whose fencing tokens count grants: the cancelled waiter
    never held the lock, so the next taker's token is the holder's + 1."""
    url = "memory://py-cancelled-wait"

    async def main():
        client = polylock.Client(url)
        holder = client.lock(name)
        first = await holder.acquire_async(timeout=BOUND)
        waiter = client.lock(name)
        parked = asyncio.Event()
        task = asyncio.ensure_future(waiter.acquire_async(on_wait_started=parked.set))
        await asyncio.wait_for(parked.wait(), BOUND)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not waiter.is_held and waiter.lease is None
        await holder.release_async()
        nxt = client.lock(name)
        lease = await nxt.try_acquire_async()
        assert lease.fencing_token == first.fencing_token + 1
        await nxt.release_async()
        # The cancelled lock object acquires again.
        assert (await waiter.try_acquire_async()).fencing_token == first.fencing_token + 2
        await waiter.release_async()

    run(main())


def test_lock_cancel_stops_a_blocking_wait_from_another_thread(client, name):
    holder = client.lock(name)
    holder.acquire(timeout=BOUND)
    waiter = client.lock(name, ttl=TTL)
    parked = threading.Event()
    raised = []

    def wait():
        try:
            waiter.acquire(on_wait_started=parked.set)
        except polylock.Error as error:
            raised.append(error)

    thread = threading.Thread(target=wait)
    thread.start()
    assert parked.wait(BOUND)
    assert waiter.cancel()
    thread.join(BOUND)
    assert not thread.is_alive()
    assert [type(e) for e in raised] == [polylock.Cancelled]
    assert raised[0].code == "cancelled"
    assert not waiter.cancel(), "nothing pending any more"
    holder.release()
    assert waiter.acquire(timeout=BOUND)  # LDLM: see TTL
    waiter.release()


def test_lock_cancel_stops_an_awaited_wait(url, name):
    async def main():
        client = polylock.AsyncClient(url)
        holder = client.lock(name)
        await holder.acquire(timeout=BOUND)
        waiter = client.lock(name, ttl=TTL)
        parked = asyncio.Event()
        task = asyncio.ensure_future(waiter.acquire(on_wait_started=parked.set))
        await asyncio.wait_for(parked.wait(), BOUND)
        assert waiter.cancel()
        with pytest.raises(polylock.Cancelled):
            await task
        await holder.release()
        assert await waiter.acquire(timeout=BOUND)
        await waiter.release()

    run(main())


def test_an_exception_from_on_wait_started_cancels_the_wait(client, name):
    holder = client.lock(name)
    holder.acquire(timeout=BOUND)
    waiter = client.lock(name, ttl=TTL)

    def refuse():
        raise RuntimeError("not waiting after all")

    with pytest.raises(RuntimeError, match="not waiting after all"):
        waiter.acquire(timeout=BOUND, on_wait_started=refuse)
    assert not waiter.is_held and not waiter.cancel()
    holder.release()
    assert waiter.acquire(timeout=BOUND)  # LDLM: see TTL
    waiter.release()

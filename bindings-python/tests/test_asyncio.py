"""AsyncClient: the same behaviours without blocking the event loop."""

import asyncio

import pytest

import polylock


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def test_async_with_and_tokens(url, caps, name):
    async def main():
        client = polylock.AsyncClient(url)
        lock = client.lock(name, ttl=15)
        async with lock as lease:
            assert lease.is_held and lock.is_held
            first = lease.fencing_token
        assert not lock.is_held
        async with client.lock(name) as lease:
            if caps.fencing:
                assert lease.fencing_token > first
            else:
                assert first is None and lease.fencing_token is None

    run(main())


def test_waiting_does_not_block_the_loop(url, name):
    async def main():
        holder = polylock.AsyncClient(url).lock(name)
        await holder.acquire()
        waiter = polylock.AsyncClient(url).lock(name)
        parked = asyncio.Event()
        wait = asyncio.ensure_future(waiter.acquire(timeout=60, on_wait_started=parked.set))
        # The loop keeps running while the waiter waits: this coroutine
        # hears that it parked, and gets to release the holder.
        await asyncio.wait_for(parked.wait(), 60)
        assert not wait.done()
        await holder.release()
        lease = await wait
        assert lease.is_held
        await waiter.release()

    run(main())


def test_cancelling_a_wait_leaves_the_lock_usable(url, name):
    async def main():
        holder = polylock.AsyncClient(url).lock(name)
        await holder.acquire()
        waiter = polylock.AsyncClient(url).lock(name)
        parked = asyncio.Event()
        wait = asyncio.ensure_future(waiter.acquire(on_wait_started=parked.set))
        await asyncio.wait_for(parked.wait(), 60)
        wait.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wait
        await holder.release()
        # The cancelled wait took nothing: the lock is free for a third.
        third = polylock.AsyncClient(url).lock(name)
        lease = await third.acquire(timeout=30)
        await third.release()
        # And the waiter's lock object can acquire again.
        assert await waiter.acquire(timeout=30)
        await waiter.release()

    run(main())


def test_async_errors(url, name):
    async def main():
        client = polylock.AsyncClient(url)
        holder = client.lock(name)
        await holder.acquire()
        other = polylock.AsyncClient(url).lock(name)
        assert await other.try_acquire() is None
        with pytest.raises(polylock.LockTimeout):
            await other.acquire(timeout=0.2)
        await holder.release()
        with pytest.raises(polylock.NotHeld):
            await holder.release()
        with pytest.raises(polylock.InvalidArgument):
            await polylock.AsyncClient("nope://").connect()

    run(main())

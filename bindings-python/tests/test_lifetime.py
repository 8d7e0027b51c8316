"""Registrations keep nothing alive: a client with a Lock, lost callbacks
that refer to the client and to the lock (or lease) itself, and a lease
held then released (blocking and awaited) is freed once unreferenced: its
Python objects (weak references) and its native client (counted by the
module's `_live_clients()` debug hook). No sleeping: the garbage collector
and the count answer at once."""

import asyncio
import gc
import weakref

from polylock import _native

import polylock


def test_a_client_with_registrations_is_freed(name):
    _native._track_clients(True)
    try:
        before = _native._live_clients()
        client = polylock.Client("memory://py-lifetime")
        assert _native._live_clients() == before + 1
        lock = client.lock(name)
        lock.on_lost(lambda event: (client, lock))  # a cycle through the lock
        removed = lock.on_lost(lambda event: (client, lock))
        assert lock.remove_lost_listener(removed)
        lease = lock.acquire(timeout=60)
        lease.on_lost(lambda event: (client, lease))  # a cycle through the lease
        lease.release()

        async def awaited():
            got = await lock.acquire_async(timeout=60)
            await lock.release_async()
            return got

        other = asyncio.run(asyncio.wait_for(awaited(), 120))
        refs = [weakref.ref(o) for o in (client, lock, lease, other)]
        del client, lock, lease, other, awaited
        gc.collect()
        assert [ref() for ref in refs] == [None] * len(refs)
        assert _native._live_clients() == before, "the native client outlived its objects"
    finally:
        _native._track_clients(False)


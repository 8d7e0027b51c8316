"""A release that fails because the backend is unreachable keeps the lease
(held, renewed, still the lock object's): the release can be retried. On
Consul, reached through tests/support/cut_proxy.py, cut and restored."""

import asyncio

import pytest

import polylock
from conftest import CutProxy, consul_url


@pytest.fixture
def proxied():
    """(client through a cuttable proxy, client straight to Consul, proxy)."""
    url = consul_url()
    with CutProxy(url.removeprefix("consul://")) as proxy:
        yield polylock.Client(f"consul://{proxy.address}"), polylock.Client(url), proxy


def test_a_release_that_failed_can_be_retried(proxied, name):
    through_proxy, direct, proxy = proxied
    lock = through_proxy.lock(name, ttl=60)
    lease = lock.acquire(timeout=30)
    proxy.cut()
    with pytest.raises(polylock.ConnectionError):
        lock.release()
    # Still held, by this lock object: the server still has it, and the
    # lock refuses a second acquisition.
    assert lock.is_held and lease.is_held
    assert direct.lock(name).try_acquire() is None
    with pytest.raises(polylock.UsageError):
        lock.try_acquire()
    # Through the lease object too.
    with pytest.raises(polylock.ConnectionError):
        lease.release()
    assert lock.is_held
    proxy.restore()
    lock.release()
    assert not lock.is_held and lock.lease is None
    with pytest.raises(polylock.NotHeld):
        lock.release()
    other = direct.lock(name)
    assert other.try_acquire() is not None
    other.release()


def test_an_awaited_release_that_failed_can_be_retried(proxied, name):
    through_proxy, direct, proxy = proxied

    async def main():
        lock = through_proxy.lock(name, ttl=60)
        await lock.acquire_async(timeout=30)
        proxy.cut()
        with pytest.raises(polylock.ConnectionError):
            await lock.release_async()
        assert lock.is_held
        proxy.restore()
        await lock.release_async()
        assert not lock.is_held
        # The lock object takes the lock again.
        assert await lock.try_acquire_async() is not None
        await lock.release_async()

    asyncio.run(asyncio.wait_for(main(), 120))
    other = direct.lock(name)
    assert other.try_acquire() is not None
    other.release()

"""The blocking API against every backend."""

import threading

import pytest

import polylock


def test_with_block_holds_and_releases(client, name):
    lock = client.lock(name, ttl=15)
    with lock as lease:
        assert lease.is_held and lock.is_held
        assert 0 < lease.time_to_expiration <= 15
        assert lease.name == name and lease.limit == 1
        assert isinstance(lease.fencing_token, int)
        assert lock.fencing_token == lease.fencing_token
        lock.renew()
    assert not lease.is_held and not lock.is_held
    assert lock.time_to_expiration == 0.0


def test_others_wait_time_out_and_see_increasing_tokens(url, name):
    a, b = polylock.Client(url), polylock.Client(url)
    first = a.lock(name).acquire(timeout=10)
    other = b.lock(name)
    assert other.try_acquire() is None
    with pytest.raises(polylock.LockTimeout) as raised:
        other.acquire(timeout=0.2)
    assert raised.value.code == "timeout"
    assert isinstance(raised.value, TimeoutError)
    token = first.fencing_token
    first.release()
    second = other.acquire(timeout=10)
    assert second.fencing_token > token
    other.release()


def test_double_release_and_reuse_are_typed_errors(client, name):
    lock = client.lock(name)
    with pytest.raises(polylock.NotHeld):
        lock.release()
    lease = lock.acquire(timeout=10)
    with pytest.raises(polylock.UsageError):
        lock.try_acquire()
    lease.release()
    with pytest.raises(polylock.NotHeld):
        lease.release()
    with pytest.raises(polylock.NotHeld):
        lock.release()


def test_semaphore_limit_and_mismatch(url, name):
    clients = [polylock.Client(url) for _ in range(4)]
    leases = [c.lock(name, limit=2).try_acquire() for c in clients[:2]]
    assert all(leases)
    assert clients[2].lock(name, limit=2).try_acquire() is None
    with pytest.raises(polylock.LimitMismatch):
        clients[3].lock(name, limit=3).try_acquire()
    for lease in leases:
        lease.release()


def test_bad_input(client):
    for bad in ["", "bad name!", "x" * 300]:
        with pytest.raises(polylock.InvalidArgument):
            client.lock(bad)
    with pytest.raises(ValueError):
        client.lock("ok", ttl=0.01)
    with pytest.raises(polylock.InvalidArgument):
        client.lock("ok", ttl=-1)
    with pytest.raises(OverflowError):
        client.lock("ok", limit=-1)
    with pytest.raises(polylock.InvalidArgument):
        client.lock("ok", limit=0)
    with pytest.raises(polylock.InvalidArgument):
        client.lock("ok").acquire(timeout=-1)
    with pytest.raises(polylock.InvalidArgument):
        polylock.Client("nope://x")
    with pytest.raises(TypeError):
        client.lock(None)


def test_waiting_releases_the_gil(client, name):
    """The holder (this thread) can only release if the waiter's blocking
    acquire let go of the GIL."""
    holder = client.lock(name)
    holder.acquire(timeout=10)
    waiting = threading.Event()
    got = []

    def wait():
        waiting.set()
        lock = client.lock(name)
        got.append(lock.acquire(timeout=60))
        lock.release()

    thread = threading.Thread(target=wait)
    thread.start()
    assert waiting.wait(10)
    holder.release()
    thread.join(60)
    assert not thread.is_alive() and got and got[0].fencing_token is not None


def test_threads_never_overlap(client, name):
    inside, overlaps = [0], [0]
    guard = threading.Lock()

    def work():
        lock = client.lock(name)
        for _ in range(10):
            with lock:
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert overlaps[0] == 0

"""The blocking API against every backend."""

import threading

import pytest

import polylock


def test_with_block_holds_and_releases(client, caps, name):
    lock = client.lock(name, ttl=15)
    with lock as lease:
        assert lease.is_held and lock.is_held
        assert 0 < lease.time_to_expiration <= 15
        assert lease.name == name and lease.limit == 1
        if caps.fencing:
            assert isinstance(lease.fencing_token, int)
        else:
            assert lease.fencing_token is None
        assert lock.fencing_token == lease.fencing_token
        lock.renew()
    assert not lease.is_held and not lock.is_held
    assert lock.time_to_expiration == 0.0


def test_others_wait_time_out_and_see_increasing_tokens(url, caps, name):
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
    if caps.fencing:
        assert second.fencing_token > token
    else:
        assert token is None and second.fencing_token is None
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


def test_a_released_lock_takes_another_limit_where_idle_limits_reset(url, caps, name):
    a, b = polylock.Client(url), polylock.Client(url)
    a.lock(name, limit=3).acquire(timeout=10).release()
    other = b.lock(name, limit=2)
    if caps.idle_limit_resets:
        assert other.try_acquire() is not None
        other.release()
    else:
        # LDLM keeps an idle lock's size until its garbage collection.
        with pytest.raises(polylock.LimitMismatch):
            other.try_acquire()
        same = b.lock(name, limit=3)
        assert same.try_acquire() is not None
        same.release()


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


def test_waiting_releases_the_gil(client, caps, name):
    """The holder (this thread) can only release once the waiter parked if
    the waiter's blocking acquire let go of the GIL."""
    holder = client.lock(name)
    holder.acquire(timeout=10)
    waiting = threading.Event()
    got = []

    def wait():
        lock = client.lock(name)
        got.append(lock.acquire(timeout=60, on_wait_started=waiting.set))
        lock.release()

    thread = threading.Thread(target=wait)
    thread.start()
    assert waiting.wait(10)
    holder.release()
    thread.join(60)
    assert not thread.is_alive() and got
    assert (got[0].fencing_token is not None) == caps.fencing


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


def test_capabilities_say_what_the_backend_can_do(client):
    caps = client.capabilities
    assert all(
        isinstance(getattr(caps, flag), bool)
        for flag in ("fencing", "loss_watch", "semaphores", "event_stream", "inspection", "server_wait")
    )
    if client.scheme == "memory":
        assert caps.fencing and caps.event_stream and caps.outlives_connection
    if client.scheme == "ldlm":
        assert not caps.fencing and caps.server_wait and not caps.outlives_connection
    assert "fencing=" in repr(caps)


def test_a_lease_the_caller_does_not_renew_ends_at_its_ttl(url, caps, name):
    a, b = polylock.Client(url), polylock.Client(url)
    lock = a.lock(name, ttl=2, auto_renew=False)
    lost = threading.Event()
    reasons = []
    lock.on_lost(lambda event: (reasons.append(event.reason), lost.set()))
    lease = lock.acquire(timeout=10)
    lease.renew()  # the caller's renewal restarts its TTL
    assert lost.wait(60)
    assert "not renewed" in reasons[0] and "not renewed" in lease.loss_reason
    assert not lease.is_held
    taken = b.lock(name, ttl=2).acquire(timeout=60)  # released, not left to expire
    if caps.fencing:
        assert taken.fencing_token > lease.fencing_token
    with pytest.raises(polylock.LockLost):
        lease.release()
    taken.release()

"""One Lock object, many leases: it acquires again after a release and after
a loss, its lost listeners hear of each lease once and can be removed, and
Lease objects are views (dropping one releases nothing; the lease goes with
its lock). Leases are taken away from outside with `revoke` (a real server:
Consul, LDLM, FerretDB/MongoDB)."""

import gc
import queue

import pytest

import polylock
from conftest import revoke

BOUND = 60


def test_a_lock_acquires_again_after_a_release(client, name):
    lock = client.lock(name)
    tokens = []
    for _ in range(3):
        lease = lock.acquire(timeout=BOUND)
        assert lock.is_held and lock.lease.holder == lease.holder
        tokens.append(lease.fencing_token)
        lock.release()
        assert not lock.is_held and lock.lease is None
    if client.capabilities.fencing:
        assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_lost_listeners_hear_each_lease_once_and_can_be_removed(server_url, name):
    lock = polylock.Client(server_url).lock(name)
    heard = queue.Queue()
    lock.on_lost(lambda event: heard.put(("kept", event.holder)))
    removed = lock.on_lost(lambda event: heard.put(("removed", event.holder)))
    # Listeners run in registration order: once "last" is heard, a removed
    # listener would have been heard before it.
    lock.on_lost(lambda event: heard.put(("last", event.holder)))
    assert lock.remove_lost_listener(removed)
    assert not lock.remove_lost_listener(removed)
    for _ in range(2):
        # The lock object acquires again after its lease was lost.
        lease = lock.acquire(timeout=BOUND)
        revoke(server_url, name, lease.holder)
        assert heard.get(timeout=BOUND) == ("kept", lease.holder)
        assert heard.get(timeout=BOUND) == ("last", lease.holder)
        assert not lock.is_held and lock.lease.loss_reason
        with pytest.raises(polylock.LockLost):
            lock.release()
    assert heard.empty(), "a listener heard a loss twice, or after its removal"


def test_dropping_a_lease_object_releases_nothing(url, name):
    lock = polylock.Client(url).lock(name)
    lease = lock.acquire(timeout=BOUND)
    del lease
    gc.collect()
    assert lock.is_held
    assert polylock.Client(url).lock(name).try_acquire() is None
    lock.release()


def test_a_lease_object_keeps_its_lock_and_lease(url, name):
    # The Lock object is dropped at once; its Lease keeps it.
    lease = polylock.Client(url).lock(name).acquire(timeout=BOUND)
    gc.collect()
    assert lease.is_held
    other = polylock.Client(url).lock(name)
    assert other.try_acquire() is None
    lease.release()
    assert other.acquire(timeout=BOUND)
    other.release()


def test_a_lock_collected_with_its_leases_releases_in_the_background(url, name):
    lock = polylock.Client(url).lock(name)
    lock.acquire(timeout=BOUND)
    del lock
    gc.collect()
    other = polylock.Client(url).lock(name)
    assert other.acquire(timeout=BOUND)  # once the background release is through
    other.release()


def test_an_earlier_lease_object_answers_for_itself(client, name):
    lock = client.lock(name)
    first = lock.acquire(timeout=BOUND)
    first.release()  # through the Lease: the lock is free for the next
    assert lock.lease is None and not lock.is_held
    second = lock.acquire(timeout=BOUND)
    with pytest.raises(polylock.NotHeld):
        first.release()
    assert second.is_held and lock.is_held, "the newer lease is untouched"
    lock.release()

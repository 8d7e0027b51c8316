"""The bad-input matrix, Python column: every case gets a typed exception
(or the documented accepted outcome) and loses nothing, on memory://. With
POLYLOCK_BAD_INPUT_RECORDS set, each case appends one JSON line
{"case", "lang": "python", "error"} to that file for
tests/bad-input/table.py (README "Bad input")."""

import gc
import json
import os
import sys
import threading
import time
import uuid

import pytest

import polylock
from polylock import errors

NAMESPACE = f"memory://py-bad-{os.getpid()}"


def record(case, error):
    path = os.environ.get("POLYLOCK_BAD_INPUT_RECORDS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"case": case, "lang": "python", "error": error}) + "\n")


def class_name(exc):
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def expect(case, expected, call):
    with pytest.raises(expected) as caught:
        call()
    assert type(caught.value) is expected, f"{case}: {caught.value!r}"
    record(case, class_name(caught.value))
    return caught.value


def unique(base):
    return f"py-bad/{base}/{uuid.uuid4().hex}"


@pytest.fixture
def client():
    return polylock.Client(NAMESPACE)


@pytest.fixture
def witness(client):
    """A held lease; checked after every rejected call: still held, and a
    fresh lock of the same client still works."""
    lock = client.lock(unique("held"))
    lease = lock.try_acquire()
    assert lease is not None

    def check():
        assert lease.is_held, "the held lease was lost"
        other = client.lock(unique("after"))
        assert other.try_acquire() is not None
        other.release()

    yield check
    check()
    lock.release()


@pytest.mark.parametrize(
    "case,name,expected",
    [
        ("name-empty", "", errors.InvalidArgument),
        ("name-too-long", "a" * 257, errors.InvalidArgument),
        ("name-control-char", "bad\nname", errors.InvalidArgument),
        ("name-control-char", "bad\0name", errors.InvalidArgument),
        # A str with a lone surrogate has no UTF-8 form.
        ("name-non-utf8", "bad\udcffname", UnicodeEncodeError),
        ("name-null", None, TypeError),
        ("value-huge", "n" * (10 << 20), errors.InvalidArgument),
    ],
)
def test_bad_names(client, witness, case, name, expected):
    expect(case, expected, lambda: client.lock(name))
    witness()


def test_bytes_name_is_refused(client, witness):
    expect("name-non-utf8", TypeError, lambda: client.lock(b"\xff\xfe"))
    witness()


def test_huge_value(client, witness):
    expect("value-huge", errors.InvalidArgument, lambda: client.lock(unique("v"), value="v" * (10 << 20)))
    witness()


@pytest.mark.parametrize(
    "case,url,expected",
    [
        ("url-null", None, TypeError),
        ("url-invalid", "not a url", errors.InvalidArgument),
        ("url-unknown-scheme", "nosuch://host", errors.InvalidArgument),
    ],
)
def test_bad_urls(witness, case, url, expected):
    expect(case, expected, lambda: polylock.Client(url))
    witness()


@pytest.mark.parametrize(
    "case,options,expected",
    [
        ("ttl-zero", {"ttl": 0}, errors.InvalidArgument),
        ("ttl-too-large", {"ttl": 1e12}, errors.InvalidArgument),
        ("ttl-too-large", {"ttl": float("inf")}, errors.InvalidArgument),
        ("limit-zero", {"limit": 0}, errors.InvalidArgument),
        ("limit-negative", {"limit": -1}, OverflowError),
        ("limit-huge", {"limit": 2**64}, OverflowError),
    ],
)
def test_bad_lock_options(client, witness, case, options, expected):
    expect(case, expected, lambda: client.lock(unique("opt"), **options))
    witness()


def test_huge_default_ttl(witness):
    expect("ttl-too-large", errors.InvalidArgument, lambda: polylock.Client(NAMESPACE, default_ttl=1e12))
    witness()


def test_negative_timeout(client, witness):
    lock = client.lock(unique("timeout"))
    expect("timeout-negative", errors.InvalidArgument, lambda: lock.acquire(timeout=-1))
    assert lock.acquire(timeout=1) is not None, "the lock still works"
    lock.release()
    witness()


def test_double_release(client, witness):
    lock = client.lock(unique("double"))
    lock.acquire(timeout=1)
    lock.release()
    expect("double-release", errors.NotHeld, lock.release)
    assert lock.try_acquire() is not None
    lock.release()
    witness()


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_release_after_loss(client, witness):
    # No operator view in Python: the lease the caller renews expires.
    lock = client.lock(unique("expired"), ttl=1, auto_renew=False)
    lease = lock.acquire(timeout=1)
    wait_until(lambda: not lease.is_held and lease.loss_reason is not None)
    expect("release-after-loss", errors.LockLost, lock.release)
    # Lost is declared a safety margin before the backend's expiry: wait for it.
    assert lock.acquire(timeout=2) is not None, "free again after the loss"
    lock.release()
    witness()


def test_use_after_close():
    client = polylock.Client(NAMESPACE)
    lock = client.lock(unique("closed"))
    del client
    gc.collect()
    lease = lock.acquire(timeout=1)
    assert lease.is_held
    lock.release()
    record("use-after-close", "ok (the lock keeps its client)")


def test_callback_raises(client, monkeypatch):
    seen = []
    called = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_type))

    def raises(event):
        raise RuntimeError("a lost callback raises")

    lock = client.lock(unique("raises"), ttl=1, auto_renew=False)
    lock.on_lost(raises)
    lock.on_lost(lambda event: called.append(event.name))
    lease = lock.acquire(timeout=1)
    lease.on_lost(raises)
    lease.on_lost(lambda event: called.append(event.name))
    wait_until(lambda: len(called) == 2 and len(seen) == 2)
    assert seen == [RuntimeError, RuntimeError]
    # Still working: the next lease's loss is told too.
    with pytest.raises(errors.LockLost):
        lock.release()
    lock.acquire(timeout=2)
    wait_until(lambda: len(called) == 3 and len(seen) == 3)
    record("callback-throws", "sys.unraisablehook (others still called)")


def test_threads_one_handle(client):
    lock = client.lock(unique("threads"))
    barrier = threading.Barrier(16)
    outcomes = []

    def contend():
        barrier.wait()
        try:
            lock.acquire(timeout=0.2)
            outcomes.append("held")
        except Exception as exc:  # noqa: BLE001 - the test sorts them
            outcomes.append(exc)

    threads = [threading.Thread(target=contend) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("held") == 1, outcomes
    others = [each for each in outcomes if each != "held"]
    assert all(type(each) is errors.UsageError for each in others), others
    assert lock.is_held
    lock.release()
    record("threads-one-handle", class_name(others[0]))

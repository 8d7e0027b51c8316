"""Process-level behaviour: lost callbacks from a background thread when a
lease is taken away (Consul: its session destroyed; LDLM, MongoDB: the
polylock CLI releases it), Ctrl-C during a wait, fork, interpreter exit
with leases held, a killed holder, and mutual exclusion with a Rust
contender."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import polylock
from conftest import revoke, rust_contender, server_backends


def test_on_lost_runs_once_in_a_background_thread(server_url, name):
    url = server_url
    client = polylock.Client(url)
    lock = client.lock(name)
    events, threads = [], []
    fired = threading.Event()
    raised = []

    def record(event):
        events.append(event)
        threads.append(threading.current_thread())
        fired.set()
        raise RuntimeError("a failing callback must not hurt anyone")

    lock.on_lost(record)
    lease = lock.acquire(timeout=10)
    original_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: raised.append(unraisable.exc_value)
    try:
        revoke(url, name, lease.holder)
        assert fired.wait(60)
    finally:
        sys.unraisablehook = original_hook
    assert len(events) == 1 and events[0].name == name and events[0].reason
    assert events[0].holder == lease.holder
    assert events[0].fencing_token == lease.fencing_token
    assert (lease.fencing_token is not None) == client.capabilities.fencing
    assert threads[0] is not threading.main_thread()
    assert any(isinstance(e, RuntimeError) for e in raised)
    assert not lease.is_held
    with pytest.raises(polylock.LockLost):
        lock.release()
    # The lock is free for others.
    other = polylock.Client(url).lock(name)
    assert other.acquire(timeout=30)
    other.release()


def run_python(code, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_ctrl_c_interrupts_a_wait():
    child = run_python(
        """
        import polylock
        client = polylock.Client("memory://ctrl-c")
        held = client.lock("busy").acquire()
        waiter = client.lock("busy")
        try:
            waiter.acquire(on_wait_started=lambda: print("waiting", flush=True))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        # The interrupted wait took nothing; its lock object acquires again.
        assert not waiter.is_held
        held.release()
        assert waiter.try_acquire().fencing_token == held.fencing_token + 1
        print("reused", flush=True)
        """
    )
    assert child.stdout.readline().strip() == "waiting"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert "interrupted" in out and "reused" in out, err
    assert child.returncode == 0, err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_gives_a_clear_error_or_works():
    child = run_python(
        """
        import os, polylock
        client = polylock.Client("memory://fork")
        client.lock("before").acquire(timeout=5)
        pid = os.fork()
        if pid == 0:
            try:
                client.lock("inherited").try_acquire()
                outcome = "worked"
            except polylock.UsageError as error:
                outcome = "usage: " + str(error)
            fresh = polylock.Client("memory://fork-child")
            assert fresh.lock("child").try_acquire() is not None
            print(outcome, flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", status, flush=True)
        """
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "child status 0" in out, out + err
    assert "worked" in out or "usage:" in out


def test_interpreter_exit_with_leases_held(url):
    child = run_python(
        f"""
        import polylock
        client = polylock.Client({url!r})
        leases = [client.lock(f"py-test/exit/{{i}}-{{id(client)}}").acquire(timeout=10) for i in range(3)]
        leases[0].on_lost(lambda event: print("lost", event))
        print("holding", flush=True)
        """
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "holding" in out and "Traceback" not in err, err


def test_a_killed_holder_keeps_its_lease_only_where_leases_outlive_connections(server_url, name):
    child = run_python(
        f"""
        import sys, polylock
        lease = polylock.Client({server_url!r}).lock({name!r}, ttl=300).acquire(timeout=30)
        print("holding", flush=True)
        sys.stdin.read()
        """,
        stdin=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == "holding", child.stderr.read()
    finally:
        child.kill()
        child.communicate(timeout=60)
    client = polylock.Client(server_url)
    lock = client.lock(name)
    if client.capabilities.outlives_connection:
        # Nobody released it: the lease stands until its TTL (300 s) runs out.
        assert lock.try_acquire() is None
    else:
        # LDLM frees every lock of a connection when it closes.
        assert lock.acquire(timeout=60).is_held
        lock.release()


@pytest.fixture(params=server_backends({"consul", "ldlm"}), ids=lambda b: b[0])
def contended_url(request):
    label, value = request.param
    if value is None:
        pytest.fail(f"{label}: its server URL is not set (CI set)")
    return value


def test_mutual_exclusion_with_a_rust_contender(contended_url, name):
    url = contended_url
    fencing = polylock.Client(url).capabilities.fencing
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"polylock-mixed-{os.getpid()}.log"
    log.unlink(missing_ok=True)
    rounds = 15
    contender = subprocess.Popen(
        [rust_contender(), url, name, str(rounds), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = polylock.Client(url).lock(name)
    for _ in range(rounds):
        with lock as lease:
            with open(log, "a") as out:
                out.write(f"start python {lease.fencing_token or 0}\n")
                out.flush()
                out.write(f"end python {lease.fencing_token or 0}\n")
    _, err = contender.communicate(timeout=300)
    assert contender.returncode == 0, err
    lines = log.read_text().split()
    records = [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    assert len(records) == 4 * rounds
    tokens = []
    for start, end in zip(records[::2], records[1::2]):
        assert start[0] == "start" and end[0] == "end" and start[1:] == end[1:], (start, end)
        tokens.append(int(start[2]))
    if fencing:
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    else:
        assert set(tokens) == {0}  # no fencing tokens on this backend
    assert {r[1] for r in records} == {"python", "rust"}
    log.unlink()

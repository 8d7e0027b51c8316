"""Process-level behaviour: lost callbacks from a background thread,
Ctrl-C during a wait, fork, interpreter exit with leases held, and mutual
exclusion with a Rust contender."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest

import polylock
from conftest import consul_url

REPO = Path(__file__).resolve().parents[2]


def destroy_consul_session(url, session):
    address = url.removeprefix("consul://")
    request = urllib.request.Request(f"http://{address}/v1/session/destroy/{session}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_on_lost_runs_once_in_a_background_thread(name):
    url = consul_url()
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
        destroy_consul_session(url, lease.holder)
        assert fired.wait(60)
    finally:
        sys.unraisablehook = original_hook
    assert len(events) == 1 and events[0].name == name and events[0].reason
    assert threads[0] is not threading.main_thread()
    assert any(isinstance(e, RuntimeError) for e in raised)
    assert not lease.is_held
    with pytest.raises(polylock.LockLost):
        lock.release()


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
        try:
            print("waiting", flush=True)
            client.lock("busy").acquire()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    assert child.stdout.readline().strip() == "waiting"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert "interrupted" in out, err
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


def test_mutual_exclusion_with_a_rust_contender(name):
    url = consul_url()
    rust = subprocess.run(
        ["cargo", "build", "-q", "--locked", "-p", "polylock", "--example", "contend"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rust.returncode == 0, rust.stderr
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"polylock-mixed-{os.getpid()}.log"
    log.unlink(missing_ok=True)
    rounds = 15
    contender = subprocess.Popen(
        [str(REPO / "target/debug/examples/contend"), url, name, str(rounds), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = polylock.Client(url).lock(name)
    for _ in range(rounds):
        with lock as lease:
            with open(log, "a") as out:
                out.write(f"start python {lease.fencing_token}\n")
                out.flush()
                out.write(f"end python {lease.fencing_token}\n")
    _, err = contender.communicate(timeout=300)
    assert contender.returncode == 0, err
    lines = log.read_text().split()
    records = [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    assert len(records) == 4 * rounds
    tokens = []
    for start, end in zip(records[::2], records[1::2]):
        assert start[0] == "start" and end[0] == "end" and start[1:] == end[1:], (start, end)
        tokens.append(int(start[2]))
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    assert {r[1] for r in records} == {"python", "rust"}
    log.unlink()

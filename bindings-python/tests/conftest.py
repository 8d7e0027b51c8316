"""Backends for the pytest suite: memory:// always, and the real servers
whose URLs tests/with-servers.sh exports (Consul, FerretDB, LDLM; a real
MongoDB through POLYLOCK_TEST_MONGODB_URL). In CI (CI set) a missing Consul
or LDLM URL fails, except that LDLM cases skip when tests/with-servers.sh
found no LDLM server binary (POLYLOCK_TEST_LDLM_SKIPPED=1).

Tests gate backend differences on the client's capabilities, never on
backend names."""

import functools
import json
import os
import select
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

import polylock

REPO = Path(__file__).resolve().parents[2]

# run-tests.sh sets it to the wheel it installed into a fresh venv: the
# suite then checks (test_installed.py) that it tests that installation.
INSTALLED_WHEEL = os.environ.get("POLYLOCK_PYTHON_WHEEL")

LDLM_SKIPPED_REASON = 'no LDLM server binary (POLYLOCK_TEST_LDLM_SKIPPED=1; see README "LDLM")'


def in_ci():
    return bool(os.environ.get("CI"))


def ldlm_skipped():
    return os.environ.get("POLYLOCK_TEST_LDLM_SKIPPED") == "1"


def _backends():
    found = [("memory", f"memory://py-{os.getpid()}")]
    for label, var in (
        ("consul", "POLYLOCK_TEST_CONSUL_URL"),
        ("ldlm", "POLYLOCK_TEST_LDLM_URL"),
        ("postgres", "POLYLOCK_TEST_POSTGRES_URL"),
    ):
        if os.environ.get(var):
            found.append((label, os.environ[var]))
        elif label == "ldlm" and ldlm_skipped():
            found.append(pytest.param((label, None), marks=pytest.mark.skip(reason=LDLM_SKIPPED_REASON)))
        elif in_ci():
            found.append((label, None))
    for label, var in (("ferretdb", "POLYLOCK_TEST_FERRETDB_URL"), ("mongodb", "POLYLOCK_TEST_MONGODB_URL")):
        if os.environ.get(var):
            found.append((label, os.environ[var]))
    return found


@pytest.fixture(params=_backends(), ids=lambda b: b[0])
def url(request):
    label, value = request.param
    if value is None:
        pytest.fail(f"{label}: its server URL is not set (CI set)")
    return value


def server_backends(labels):
    """The backends of `_backends()` whose label is in `labels`."""
    return [b for b in _backends() if (b.values[0] if hasattr(b, "values") else b)[0] in labels]


@pytest.fixture(params=server_backends({"consul", "ldlm", "ferretdb", "mongodb", "postgres"}), ids=lambda b: b[0])
def server_url(request):
    """A real server (not the per-process memory://): a lease there can be
    taken away from outside (`revoke`)."""
    label, value = request.param
    if value is None:
        pytest.fail(f"{label}: its server URL is not set (CI set)")
    return value


@pytest.fixture
def name():
    return f"py-test/{uuid.uuid4().hex}"


@pytest.fixture
def client(url):
    return polylock.Client(url)


@pytest.fixture
def caps(client):
    """What the backend behind `url` can do, as the core declares it."""
    return client.capabilities


def consul_url():
    value = os.environ.get("POLYLOCK_TEST_CONSUL_URL")
    if not value:
        if in_ci():
            pytest.fail("POLYLOCK_TEST_CONSUL_URL is not set (CI set)")
        pytest.skip("needs POLYLOCK_TEST_CONSUL_URL")
    return value


def ldlm_setting(var):
    """An LDLM test server setting: skips without one (also in CI when there
    is no LDLM server binary), fails in CI otherwise."""
    if ldlm_skipped():
        pytest.skip(LDLM_SKIPPED_REASON)
    value = os.environ.get(var)
    if not value:
        if in_ci():
            pytest.fail(f"{var} is not set (CI set)")
        pytest.skip(f"needs {var}")
    return value


@functools.lru_cache(maxsize=None)
def cargo_target_dir():
    """Cargo's target directory (honours CARGO_TARGET_DIR)."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return Path(json.loads(out)["target_directory"])


@functools.lru_cache(maxsize=None)
def cargo_build(*args):
    """Builds (cargo build -q --locked ARGS) in the repository, once per run."""
    built = subprocess.run(
        ["cargo", "build", "-q", "--locked", *args], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    assert built.returncode == 0, built.stderr


def _prebuilt(var):
    """The binary $VAR names (run-tests.sh builds it before the tests run
    without cargo on PATH), or None when VAR is unset; a path that is not an
    executable file fails."""
    given = os.environ.get(var)
    if not given:
        return None
    assert os.path.isfile(given) and os.access(given, os.X_OK), f"{var}={given}: not an executable file"
    return given


def polylock_cli():
    """The polylock CLI: $POLYLOCK_CLI, else built from cli/."""
    given = _prebuilt("POLYLOCK_CLI")
    if given:
        return given
    cargo_build("-p", "polylock-cli")
    return str(cargo_target_dir() / "debug" / "polylock")


def rust_contender():
    """The Rust contender (examples/rust/contend.rs): $POLYLOCK_RUST_CONTENDER,
    else built as polylock's `contend` example."""
    given = _prebuilt("POLYLOCK_RUST_CONTENDER")
    if given:
        return given
    cargo_build("-p", "polylock", "--example", "contend")
    return str(cargo_target_dir() / "debug" / "examples" / "contend")


def destroy_consul_session(url, session):
    address = url.removeprefix("consul://")
    request = urllib.request.Request(f"http://{address}/v1/session/destroy/{session}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def revoke(url, name, holder):
    """Takes the lease `holder` of `name` away behind its holder's back: on
    Consul by destroying its session, elsewhere with the polylock CLI
    (`polylock --url URL release NAME --holder HOLDER`, its own connection)."""
    if url.startswith("consul://"):
        destroy_consul_session(url, holder)
        return
    cli = subprocess.run(
        [polylock_cli(), "--url", url, "release", name, "--holder", holder],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr


class CutProxy:
    """tests/support/cut_proxy.py in front of `target` (host:port): a
    loopback address whose connections `cut()` closes (and refuses) until
    `restore()`. Every wait for its answers is bounded."""

    ANSWER_WITHIN = 30

    def __init__(self, target):
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "support" / "cut_proxy.py"), target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._answer()
        assert line.startswith("listening "), line
        self.address = line.split()[1]

    def _answer(self):
        ready, _, _ = select.select([self.process.stdout], [], [], self.ANSWER_WITHIN)
        assert ready, "cut_proxy.py did not answer"
        return self.process.stdout.readline().strip()

    def _command(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self._answer() == f"ok {command}"

    def cut(self):
        self._command("cut")

    def restore(self):
        self._command("restore")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=self.ANSWER_WITHIN)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

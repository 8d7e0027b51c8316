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
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

import polylock

REPO = Path(__file__).resolve().parents[2]

LDLM_SKIPPED_REASON = 'no LDLM server binary (POLYLOCK_TEST_LDLM_SKIPPED=1; see README "LDLM")'


def in_ci():
    return bool(os.environ.get("CI"))


def ldlm_skipped():
    return os.environ.get("POLYLOCK_TEST_LDLM_SKIPPED") == "1"


def _backends():
    found = [("memory", f"memory://py-{os.getpid()}")]
    for label, var in (("consul", "POLYLOCK_TEST_CONSUL_URL"), ("ldlm", "POLYLOCK_TEST_LDLM_URL")):
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


def polylock_cli():
    """The polylock CLI: $POLYLOCK_CLI, else built from cli/."""
    given = os.environ.get("POLYLOCK_CLI")
    if given:
        return given
    cargo_build("-p", "polylock-cli")
    return str(cargo_target_dir() / "debug" / "polylock")


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

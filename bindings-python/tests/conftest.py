"""Backends for the pytest suite: memory:// always, and the real servers
whose URLs tests/with-servers.sh exports (Consul, FerretDB; a real MongoDB
through POLYLOCK_TEST_MONGODB_URL). With CI=true a missing Consul URL fails."""

import os
import uuid

import pytest

import polylock


def _backends():
    found = [("memory", f"memory://py-{os.getpid()}")]
    consul = os.environ.get("POLYLOCK_TEST_CONSUL_URL")
    if consul:
        found.append(("consul", consul))
    elif os.environ.get("CI") == "true":
        found.append(("consul", None))
    for label, var in (("ferretdb", "POLYLOCK_TEST_FERRETDB_URL"), ("mongodb", "POLYLOCK_TEST_MONGODB_URL")):
        if os.environ.get(var):
            found.append((label, os.environ[var]))
    return found


@pytest.fixture(params=_backends(), ids=lambda b: b[0])
def url(request):
    label, value = request.param
    if value is None:
        pytest.fail(f"{label}: its server URL is not set (CI=true)")
    return value


@pytest.fixture
def name():
    return f"py-test/{uuid.uuid4().hex}"


@pytest.fixture
def client(url):
    return polylock.Client(url)


def consul_url():
    value = os.environ.get("POLYLOCK_TEST_CONSUL_URL")
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail("POLYLOCK_TEST_CONSUL_URL is not set (CI=true)")
        pytest.skip("needs POLYLOCK_TEST_CONSUL_URL")
    return value

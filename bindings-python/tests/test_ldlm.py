"""LDLM-only behaviour through the binding: a password server (the `token`
option), TLS and mutual TLS, no fencing tokens, a lost callback when the
lease is revoked, and the calls LDLM cannot serve."""

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

import polylock
from conftest import ldlm_setting, revoke


def hold_and_release(client):
    lock = client.lock(f"py-ldlm/{uuid.uuid4().hex}")
    lease = lock.acquire(timeout=30)
    assert lease.is_held
    lease.release()


def test_a_password_server_wants_the_password(monkeypatch):
    url = ldlm_setting("POLYLOCK_TEST_LDLM_PASSWORD_URL")
    password = ldlm_setting("POLYLOCK_TEST_LDLM_PASSWORD")
    monkeypatch.delenv("LDLM_PASSWORD", raising=False)
    with pytest.raises(polylock.AuthError) as missing:
        polylock.Client(url)
    assert missing.value.code == "auth" and isinstance(missing.value, PermissionError)
    with pytest.raises(polylock.AuthError) as wrong:
        polylock.Client(url, token="not-the-password")
    assert "not-the-password" not in str(wrong.value)
    hold_and_release(polylock.Client(url, token=password))

    async def asynchronously():
        with pytest.raises(polylock.AuthError):
            await polylock.AsyncClient(url, token="not-the-password").connect()
        client = polylock.AsyncClient(url, token=password)
        async with client.lock(f"py-ldlm/{uuid.uuid4().hex}") as lease:
            assert lease.is_held

    asyncio.run(asyncio.wait_for(asynchronously(), 120))


def test_tls_with_the_servers_ca():
    url = ldlm_setting("POLYLOCK_TEST_LDLM_TLS_URL")
    certs = Path(ldlm_setting("POLYLOCK_TEST_LDLM_TLS_CERTS"))
    hold_and_release(polylock.Client(f"{url}?ca={certs / 'ca.pem'}"))
    # The public roots do not know the test CA.
    with pytest.raises(polylock.ConnectionError):
        polylock.Client(f"{url}?max_retries=0")


def test_mutual_tls_needs_the_client_certificate():
    url = ldlm_setting("POLYLOCK_TEST_LDLM_MTLS_URL")
    certs = Path(ldlm_setting("POLYLOCK_TEST_LDLM_MTLS_CERTS"))
    ca = certs / "ca.pem"
    hold_and_release(
        polylock.Client(f"{url}?ca={ca}&cert={certs / 'client.pem'}&key={certs / 'client-key.pem'}")
    )
    with pytest.raises(polylock.AuthError) as refused:
        polylock.Client(f"{url}?ca={ca}&max_retries=0")
    assert refused.value.code == "auth"


def test_no_fencing_tokens_and_a_revoked_lease_is_lost():
    url = ldlm_setting("POLYLOCK_TEST_LDLM_URL")
    name = f"py-ldlm/{uuid.uuid4().hex}"
    lock = polylock.Client(url).lock(name, ttl=6)
    events = []
    fired = threading.Event()
    lock.on_lost(lambda event: (events.append(event), fired.set()))
    lease = lock.acquire(timeout=30)
    assert lease.fencing_token is None and lock.fencing_token is None
    assert lease.holder  # the LDLM key
    revoke(url, name, lease.holder)
    assert fired.wait(60)
    assert [(e.name, e.holder, e.fencing_token) for e in events] == [(name, lease.holder, None)]
    assert lease.loss_reason and not lease.is_held
    with pytest.raises(polylock.LockLost):
        lease.renew()


def test_what_ldlm_cannot_serve_is_an_invalid_argument():
    url = ldlm_setting("POLYLOCK_TEST_LDLM_URL")
    registry = polylock.Client(url).registry(f"py-ldlm-registry/{uuid.uuid4().hex}")
    for call in (lambda: registry.whereis("db"), registry.list, registry.events):
        with pytest.raises(polylock.InvalidArgument):
            call()

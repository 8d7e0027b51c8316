"""The name registry from Python, on every backend."""

import uuid

import pytest

import polylock


def test_register_whereis_list_unregister(url, caps):
    namespace = f"py-registry/{uuid.uuid4().hex}"
    mine = polylock.Client(url).registry(namespace)
    theirs = polylock.Client(url).registry(namespace)
    assert mine.namespace == namespace
    mine.register("db", "10.0.0.5:5432")
    with pytest.raises(polylock.Conflict) as taken:
        theirs.register("db", "elsewhere")
    with pytest.raises(polylock.NotHeld):
        theirs.unregister("db")
    if caps.inspection:
        assert "10.0.0.5:5432" in str(taken.value)
        assert theirs.whereis("db") == "10.0.0.5:5432"
        assert theirs.whereis("nobody") is None
        assert theirs.list() == [("db", "10.0.0.5:5432")]
    else:
        # Looking names up needs the backend's operator views.
        with pytest.raises(polylock.InvalidArgument):
            theirs.whereis("db")
        with pytest.raises(polylock.InvalidArgument):
            theirs.list()
    mine.unregister("db")
    if caps.inspection:
        assert theirs.whereis("db") is None
        assert theirs.list() == []
    # The name is free again, for anyone.
    theirs.register("db", "elsewhere")
    theirs.unregister("db")


def test_bad_names_are_invalid_arguments(client):
    with pytest.raises(polylock.InvalidArgument):
        client.registry("bad name")
    with pytest.raises(polylock.InvalidArgument):
        client.registry("ns").register("a//b", "x")


def test_registration_events(url, caps):
    namespace = f"py-registry-events/{uuid.uuid4().hex}"
    client = polylock.Client(url)
    if not caps.event_stream:
        with pytest.raises(polylock.InvalidArgument):
            client.registry(namespace).events()
        return
    events = client.registry(namespace).events()
    registry = polylock.Client(url).registry(namespace)
    registry.register("db", "10.0.0.5:5432")
    registry.unregister("db")
    seen = [(e.name, e.registered) for _, e in zip(range(2), events)]
    assert seen == [("db", True), ("db", False)]
    with pytest.raises(polylock.InvalidArgument):
        events.next(timeout=-1)

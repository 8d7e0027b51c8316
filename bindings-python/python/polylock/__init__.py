"""polylock: distributed locks and counting semaphores with fencing tokens,
over Consul, MongoDB and ``memory://``, from one Rust core.

Blocking::

    client = polylock.Client("consul://127.0.0.1:8500")
    with client.lock("jobs/nightly", ttl=10) as lease:
        write(data, fencing_token=lease.fencing_token)

asyncio::

    client = polylock.AsyncClient("consul://127.0.0.1:8500")
    async with client.lock("jobs/nightly", ttl=10) as lease:
        ...
"""

import atexit
from typing import Any, Callable, Dict, Optional, Tuple

from . import _native
from ._native import (
    Capabilities,
    Client,
    Lease,
    Lock,
    LostEvent,
    Registry,
    RegistryEvent,
    RegistryEvents,
)
from .errors import (
    AuthError,
    BackendError,
    Cancelled,
    Conflict,
    ConnectionError,
    Error,
    InvalidArgument,
    LimitMismatch,
    LockLost,
    LockTimeout,
    NotHeld,
    UsageError,
)

__version__: str = _native.__version__

# From interpreter exit on, polylock's threads stop calling into Python;
# leases still held are released as their Lock objects are collected.
atexit.register(_native._shutdown)


class AsyncClient:
    """:class:`Client` for asyncio: the same surface, every call awaitable,
    nothing blocks the event loop. Connects on first use (or ``await
    client.connect()``)."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        token: Optional[str] = None,
        default_ttl: Optional[float] = None,
        default_value: Optional[str] = None,
    ) -> None:
        self._options = dict(token=token, default_ttl=default_ttl, default_value=default_value)
        self._url = url
        self._client: Optional[Client] = None

    async def connect(self) -> Client:
        """Connects if not yet connected; returns the blocking client."""
        if self._client is None:
            client = await Client.connect_async(self._url, **self._options)
            if self._client is None:
                self._client = client
        return self._client

    def lock(
        self,
        name: str,
        *,
        ttl: Optional[float] = None,
        limit: int = 1,
        value: Optional[str] = None,
        auto_renew: bool = True,
    ) -> "AsyncLock":
        """A handle for the lock ``name``; see :meth:`Client.lock`."""
        return AsyncLock(
            self, name, dict(ttl=ttl, limit=limit, value=value, auto_renew=auto_renew)
        )

    async def __aenter__(self) -> "AsyncClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


class AsyncLock:
    """:class:`Lock` for asyncio: ``async with lock as lease:``."""

    def __init__(self, client: AsyncClient, name: str, options: dict) -> None:
        self._client = client
        self._name = name
        self._options = options
        self._lock: Optional[Lock] = None
        # handle -> (callback, the native lock's handle once it exists)
        self._listeners: Dict[int, Tuple[Callable[[LostEvent], Any], Optional[int]]] = {}
        self._next_handle = 0

    async def _native(self) -> Lock:
        if self._lock is None:
            client = await self._client.connect()
            if self._lock is None:
                lock = client.lock(self._name, **self._options)
                for handle, (callback, _) in list(self._listeners.items()):
                    self._listeners[handle] = (callback, lock.on_lost(callback))
                self._lock = lock
        return self._lock

    @property
    def name(self) -> str:
        return self._name

    async def acquire(
        self,
        timeout: Optional[float] = None,
        *,
        on_wait_started: Optional[Callable[[], Any]] = None,
    ) -> Lease:
        """Takes the lock, waiting at most ``timeout`` seconds (None: as
        long as it takes). Cancelling the task cancels the wait (a lease
        granted at that moment is released first). ``on_wait_started()`` is
        called on the loop if the lock is busy and the wait begins."""
        lock = await self._native()
        return await lock.acquire_async(timeout, on_wait_started=on_wait_started)

    async def try_acquire(self) -> Optional[Lease]:
        """Takes the lock if it is free now; None when busy."""
        return await (await self._native()).try_acquire_async()

    async def release(self) -> None:
        """Releases the lease this lock holds (after a ConnectionError it is
        still held: call again)."""
        await (await self._native()).release_async()

    async def renew(self) -> None:
        """Renews the held lease now."""
        await (await self._native()).renew_async()

    def cancel(self) -> bool:
        """Cancels this lock's pending acquisition from elsewhere (another
        task or thread): it raises :class:`polylock.Cancelled`. False when
        none was pending."""
        return self._lock is not None and self._lock.cancel()

    def on_lost(self, callback: Callable[[LostEvent], Any]) -> int:
        """Calls ``callback(event)`` from a background thread when a lease
        of this lock is lost (once per lease). Returns a handle for
        :meth:`remove_lost_listener`."""
        self._next_handle += 1
        native = None if self._lock is None else self._lock.on_lost(callback)
        self._listeners[self._next_handle] = (callback, native)
        return self._next_handle

    def remove_lost_listener(self, handle: int) -> bool:
        """Removes the callback :meth:`on_lost` returned ``handle`` for;
        True if it was registered."""
        entry = self._listeners.pop(handle, None)
        if entry is None:
            return False
        native = entry[1]
        if native is not None and self._lock is not None:
            self._lock.remove_lost_listener(native)
        return True

    @property
    def lease(self) -> Optional[Lease]:
        return None if self._lock is None else self._lock.lease

    @property
    def fencing_token(self) -> Optional[int]:
        return None if self._lock is None else self._lock.fencing_token

    @property
    def is_held(self) -> bool:
        return self._lock is not None and self._lock.is_held

    @property
    def time_to_expiration(self) -> float:
        return 0.0 if self._lock is None else self._lock.time_to_expiration

    async def __aenter__(self) -> Lease:
        return await self.acquire()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            await self.release()
        except Error:
            if exc_type is None:
                raise
        return False


__all__ = [
    "Capabilities",
    "Client",
    "AsyncClient",
    "Lock",
    "AsyncLock",
    "Lease",
    "LostEvent",
    "Registry",
    "RegistryEvent",
    "RegistryEvents",
    "Error",
    "LockTimeout",
    "LockLost",
    "NotHeld",
    "LimitMismatch",
    "Conflict",
    "ConnectionError",
    "AuthError",
    "InvalidArgument",
    "BackendError",
    "UsageError",
    "Cancelled",
    "__version__",
]

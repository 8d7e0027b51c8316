"""polylock's exceptions. Every one derives from :class:`Error` and carries
``code``, the stable identifier the other bindings use too."""

import builtins


class Error(Exception):
    """Every polylock failure."""

    code: str = "error"

    def __init__(self, message: str = "", code: "str | None" = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class LockTimeout(Error, TimeoutError):
    """Waiting for a lock ran out of time."""

    code = "timeout"


class LockLost(Error):
    """The lease was lost (expired or taken away) before this call."""

    code = "lost"


class NotHeld(Error):
    """No lease is held: never acquired, or released already."""

    code = "not_held"


class LimitMismatch(Error):
    """The lock is held with another limit (mutex vs. semaphore size)."""

    code = "limit_mismatch"


class Conflict(Error):
    """The name is used by something that is not a compatible lock."""

    code = "conflict"


class ConnectionError(Error, builtins.ConnectionError):  # noqa: A001
    """The backend could not be reached, or the connection broke."""

    code = "connection"


class AuthError(Error, PermissionError):
    """The backend refused the credentials."""

    code = "auth"


class InvalidArgument(Error, ValueError):
    """A name, option or URL is not valid."""

    code = "invalid_argument"


class BackendError(Error):
    """The backend answered with something polylock cannot use."""

    code = "backend"


class UsageError(Error):
    """The call cannot work here: a second acquisition on a Lock object
    that holds a lease, or a client used in a forked child process."""

    code = "usage"


class Cancelled(Error):
    """An acquisition was cancelled before it took the lock. Cancelling an
    awaited acquisition raises :class:`asyncio.CancelledError` instead, as
    asyncio expects; this class is for the cancellation polylock reports on
    its own."""

    code = "cancelled"


__all__ = [
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
]

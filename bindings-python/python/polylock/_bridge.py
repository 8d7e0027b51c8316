"""Settles asyncio futures for the native module (called on the loop)."""

import asyncio


def settle(future: "asyncio.Future", ok: bool, value: object) -> None:
    """Sets the outcome of ``future`` unless it was cancelled meanwhile; a
    lease that arrives for a cancelled wait is released, not leaked."""
    if future.done():
        release = getattr(value, "release_async", None) if ok else None
        if release is not None:
            task = asyncio.ensure_future(release())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)

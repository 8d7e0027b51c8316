"""asyncio glue for the native module: the acquisition coroutine, and the
settling of futures (called on their loop, scheduled there by the native
delivery thread)."""

import asyncio
from typing import Any, Callable, Optional


def settle(future: "asyncio.Future", ok: bool, value: object) -> None:
    """Sets the outcome of ``future`` unless it was cancelled meanwhile; a
    lease that arrives for a cancelled future is released, not leaked."""
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


async def acquire(
    lock: Any,
    timeout: Optional[float],
    try_only: bool,
    on_wait_started: Optional[Callable[[], Any]],
) -> Any:
    """``Lock.acquire_async`` / ``try_acquire_async``: starts the lock's
    acquisition and awaits its outcome. Cancelled, it cancels the
    acquisition and waits for it to end (a lease granted before the cancel
    took effect is released) before the cancellation goes on, so the lock
    object is free again and nothing was taken behind the caller's back."""
    outcome, attempt = lock._acquire_future(timeout, try_only, on_wait_started)
    try:
        # Shielded: the outcome must still arrive after a cancel.
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        # This acquisition only, never one started after it ended.
        lock._cancel_attempt(attempt)
        ending = asyncio.ensure_future(_release_late(outcome))
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            pass  # cancelled again: the ending goes on alone
        raise


async def _release_late(outcome: "asyncio.Future") -> None:
    """Waits for a cancelled acquisition's outcome and releases the lease it
    brought anyway (granted before the cancel took effect)."""
    try:
        lease = await outcome
    except (Exception, asyncio.CancelledError):
        return  # polylock.Cancelled, or another failure: nothing taken
    if lease is not None:
        try:
            await lease.release_async()
        except Exception:
            # Lost meanwhile: nothing to release. Unreachable: the lease
            # stays held by the lock object, whose release() can be retried.
            pass

"""The one loop of the background work (mail, webhooks, housekeeping): a step, again and
again, until stopped.

A step says whether more is due at once (it claimed a full batch); otherwise the loop waits
``every_seconds`` or until ``stop`` is set, whichever comes first. A step that raises (the
database is down for a while) is logged under ``failure_event`` and tried again after the
wait: a background loop outlives the faults of its steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def poll(
    step: Callable[[], Awaitable[bool]],
    *,
    stop: asyncio.Event,
    every_seconds: float,
    failure_event: str,
) -> None:
    """Run ``step`` until ``stop`` is set (see the module's docstring)."""
    while not stop.is_set():
        try:
            more = await step()
        except Exception:
            log.exception(failure_event)
            more = False
        if more:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)

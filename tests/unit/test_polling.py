"""The background loop: a full batch runs again at once, a failing step is retried after
the wait, and stopping ends the loop without waiting out the interval."""

from __future__ import annotations

import asyncio
import itertools
import time

from slotwise import polling


async def test_more_due_runs_again_at_once_and_a_failure_waits() -> None:
    stop = asyncio.Event()
    calls: list[float] = []
    answers = iter([True, True, False])

    async def step() -> bool:
        calls.append(time.monotonic())
        if len(calls) == 4:
            raise RuntimeError("the database went away")
        if len(calls) == 5:
            stop.set()
        return next(answers, False)

    await asyncio.wait_for(
        polling.poll(step, stop=stop, every_seconds=1, failure_event="test_failed"), timeout=5
    )

    assert len(calls) == 5  # the failure did not end the loop
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert max(gaps[0], gaps[1]) < 0.5  # two full batches: no wait
    assert min(gaps[2], gaps[3]) >= 0.99  # idle, then failed: the interval each time


async def test_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()

    async def step() -> bool:
        return False

    loop = asyncio.create_task(
        polling.poll(step, stop=stop, every_seconds=3600, failure_event="test_failed")
    )
    await asyncio.sleep(0.05)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(loop, timeout=2)
    assert time.monotonic() - started < 1

"""Hashes run in threads, at most one a CPU at a time: each holds the argon2 memory cost
(64 MiB by default) while it runs, so a burst of sign-ups and logins must not run them all
at once (anyio's threads alone would allow 40)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from slotwise.auth.passwords import PasswordHasher


async def test_hashes_and_checks_run_at_most_one_a_cpu_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(time_cost=1, memory_kib=1024)
    stored = await hasher.hash("a-password-of-ours")
    running, peak = 0, 0
    guard = threading.Lock()

    def counted(work: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            nonlocal running, peak
            with guard:
                running += 1
                peak = max(peak, running)
            try:
                time.sleep(0.05)  # long enough for every waiting hash to have started, if it may
                return work(*args)
            finally:
                with guard:
                    running -= 1

        return run

    monkeypatch.setattr(hasher._hash, "hash", counted(hasher._hash.hash))
    monkeypatch.setattr(hasher._hash, "verify", counted(hasher._hash.verify))
    results = await asyncio.gather(
        *(hasher.hash("another-password") for _ in range(6)),
        *(hasher.verify("a-password-of-ours", stored) for _ in range(6)),
        *(hasher.verify("an-unknown-account", None) for _ in range(4)),
    )

    limit = len(os.sched_getaffinity(0))
    assert min(2, limit) <= peak <= limit
    assert results[6:12] == [True] * 6
    assert results[12:] == [False] * 4

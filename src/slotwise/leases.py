"""Work queues kept as table rows (the mail outbox, webhook deliveries): a worker claims due
rows under a lease and retries failures with exponential backoff.

A claim is a lease (``locked_until``, ``claimed_by``) taken in a short transaction: on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so several workers share the queue and never
take the same row; on SQLite under ``BEGIN IMMEDIATE``. A worker that dies mid-way leaves
its lease to expire, and the row is taken again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select

from slotwise.db import Database

Row = TypeVar("Row")


async def claim(
    db: Database,
    model: type[Row],
    *,
    pending: Any,
    now: datetime,
    limit: int,
    lease: timedelta,
    worker_id: str,
    order_by: Sequence[Any],
) -> list[Row]:
    """Up to ``limit`` rows of ``model`` (columns ``status``, ``due_at``, ``locked_until``,
    ``claimed_by``) in status ``pending``, due at ``now`` and not leased, leased to
    ``worker_id`` until ``now + lease``."""
    table: Any = model
    query = (
        select(model)
        .where(
            table.status == pending,
            table.due_at <= now,
            or_(table.locked_until.is_(None), table.locked_until <= now),
        )
        .order_by(*order_by)
        .limit(limit)
    )
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    async with db.session(writes=True) as session, session.begin():
        rows = list(await session.scalars(query))
        for row in rows:
            leased: Any = row
            leased.locked_until = now + lease
            leased.claimed_by = worker_id
    return rows


def backoff(base_seconds: float, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: ``base * 2**(attempts-1)``."""
    return timedelta(seconds=base_seconds * 2 ** (attempts - 1))

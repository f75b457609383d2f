"""Idempotency-Key on booking: the same key and body replay the first response."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from slotwise.booking.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: str


def request_hash(canonical_body: str) -> str:
    return hashlib.sha256(canonical_body.encode()).hexdigest()


async def claim(
    session: AsyncSession, *, scope: str, key: str, digest: str, now: datetime
) -> Replay | IdempotencyKey:
    """The stored response of an earlier request with this key, or a claim on the key.

    The claim is a row written first in the booking's transaction: a concurrent request
    with the same key waits on its unique index and then gets 409, never a second booking.
    """
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEEP_FOR))
    found = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    if found is not None:
        if found.request_hash != digest:
            raise IdempotencyKeyReused()
        return Replay(status=found.response_status, body=found.response_body)
    row = IdempotencyKey(
        scope=scope,
        key=key,
        request_hash=digest,
        response_status=0,
        response_body="",
        created_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise IdempotencyKeyInUse() from exc
    return row


def remember(row: IdempotencyKey, *, status: int, body: str) -> None:
    row.response_status = status
    row.response_body = body

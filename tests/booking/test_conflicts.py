"""repository.conflicts_among: a batch's times against the appointments already held, in
one query (on PostgreSQL the times unnested from arrays), each answer in its place."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.booking import repository
from slotwise.booking.repository import Asked, Conflicts
from slotwise.models import ClientStanding, Provider
from tests.factories import Clock, bookable_provider, signed_in

AT_10 = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def asked(provider_id: object, client_key: str, start_at: datetime, buffer: int = 0) -> Asked:
    pad = timedelta(minutes=buffer)
    return Asked(
        provider_id=uuid.UUID(str(provider_id)),
        client_key=client_key,
        start_at=start_at,
        end_at=start_at + HOUR,
        blocked_start_at=start_at - pad,
        blocked_end_at=start_at + HOUR + pad,
    )


async def test_each_time_gets_its_own_answer(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    _, other = await bookable_provider(client)
    holder = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=holder.headers,
        json={"provider_id": provider["id"], "start_datetime": AT_10.isoformat()},
    )
    assert booked.status_code == 201, booked.text
    database = app.state.slotwise.db
    async with database.transaction(writes=True) as session:
        session.add(ClientStanding(email="blocked@example.com", no_show_count=3, blocked=True))
    async with database.session(writes=False) as session:
        mine, theirs = [
            await session.scalar(
                select(Provider.rules_version).where(Provider.id == uuid.UUID(str(p["id"])))
            )
            for p in (provider, other)
        ]
    times = [
        asked(provider["id"], "a@example.com", AT_10 + HOUR / 2),  # the provider is busy
        asked(other["id"], holder.email, AT_10 + HOUR / 2),  # the client is busy
        asked(other["id"], "blocked@example.com", AT_10),  # the client is blocked
        asked(provider["id"], "a@example.com", AT_10 + HOUR),  # back to back: free
        asked(provider["id"], "a@example.com", AT_10 + HOUR, buffer=5),  # not with a buffer
        asked(uuid.uuid4(), "a@example.com", AT_10),  # no such provider
    ]
    async with database.transaction(writes=True) as session:
        found = await repository.conflicts_among(session, times)
    assert found == [
        Conflicts(True, False, False, mine),
        Conflicts(False, True, False, theirs),
        Conflicts(False, False, True, theirs),
        Conflicts(False, False, False, mine),
        Conflicts(True, False, False, mine),
        Conflicts(False, False, False, None),
    ]

"""Round-robin bookings in the booking queue's batches: each batch gives its bookings
distinct members in the rule's order, and a member taken or refused after the decision is
passed over, never booked twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from slotwise.booking import create, write
from slotwise.booking.create import Booked
from slotwise.booking.pools import Pool
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import TermsCache
from slotwise.config import Settings
from slotwise.errors import AppError
from slotwise.models import Appointment
from slotwise.teams import booking as team_booking
from slotwise.teams.schemas import TeamBookingCreate
from tests.booking.test_queue import Commits, claims_of, state_of
from tests.factories import BOOKING_NOW, Clock, count_rows, guest_booking, signed_in
from tests.teams.conftest import DAY, Crew, make_crew


def _asked(crew: Crew, at: str, n: int) -> team_booking.TeamRequest:
    data = TeamBookingCreate.model_validate(
        {
            "service_id": crew.round_robin["id"],
            "start_datetime": f"{DAY}T{at}:00Z",
            "guest_details": {"name": f"Guest {n}", "email": f"queued-{n}@example.com"},
        }
    )
    return team_booking.request(crew.handle, data)


async def _one_batch(
    app: FastAPI, asked: list[team_booking.TeamRequest]
) -> list[tuple[Pool, Booked]]:
    """The bookings handed to the worker's one writer at once: they reach it as one batch."""
    writer = state_of(app).bookings
    writer.writers = 1
    return await asyncio.gather(
        *(writer.submit_pooled(claims=None, request=one, now=BOOKING_NOW) for one in asked)
    )


def _handles(crew: Crew, found: list[tuple[Pool, Booked]]) -> list[str]:
    by_id = {str(profile["id"]): profile["public_handle"] for _account, profile in crew.members}
    return [by_id[str(booked.appointment.provider_id)] for _pool, booked in found]


def _handle(crew: Crew, index: int) -> str:
    return str(crew.members[index][1]["public_handle"])


async def test_one_batch_gives_one_time_to_distinct_members_in_the_rules_order(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    crew = await make_crew(
        client, settings, **{"0": {"priority": 1}, "1": {"priority": 3}, "2": {"priority": 2}}
    )
    with Commits(app) as commits:
        found = await _one_batch(app, [_asked(crew, "10:00", n) for n in range(3)])
    assert _handles(crew, found) == [_handle(crew, i) for i in (1, 2, 0)]
    assert commits.count == 1  # decided and written together


async def test_a_batch_counts_the_members_it_gives_bookings_to(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, clock: Clock
) -> None:
    """Two times, two equal members: the first booking goes to the first by handle, and the
    second, at another time (both free), to the other, whose count is now the lower."""
    crew = await make_crew(client, settings, size=2)
    first = min(range(2), key=lambda i: _handle(crew, i))
    with Commits(app) as commits:
        found = await _one_batch(app, [_asked(crew, "10:00", 0), _asked(crew, "12:00", 1)])
    assert _handles(crew, found) == [_handle(crew, first), _handle(crew, 1 - first)]
    assert commits.count == 1


async def test_a_member_booked_meanwhile_is_passed_over(
    app: FastAPI,
    client: httpx.AsyncClient,
    crew: Crew,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule's first member, free when the batch decided, is booked by another worker
    before the batch takes its locks: the batch's judgment finds them busy and gives the
    booking to the next."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("on SQLite the batch decides and writes under the write lock: no meanwhile")
    first = min(range(3), key=lambda i: _handle(crew, i))
    member = crew.members[first][1]
    real = write.lock

    async def another_worker_books_first(session: Any, claims: list[write.Claim]) -> None:
        monkeypatch.setattr(write, "lock", real)  # once
        writer = state_of(app).bookings
        async with writer.database.transaction(writes=True) as other:
            await create.book(
                other,
                kept_terms=TermsCache(),
                user=None,
                data=AppointmentCreate.model_validate(
                    guest_booking(member["id"], f"{DAY}T10:00:00Z")
                ),
                now=BOOKING_NOW,
                guests=writer.guests,
            )
        await real(session, claims)

    monkeypatch.setattr(write, "lock", another_worker_books_first)
    (found,) = await _one_batch(app, [_asked(crew, "10:00", 0)])
    assert _handles(crew, [found]) != [_handle(crew, first)]
    assert await count_rows(app, Appointment, provider_id=uuid.UUID(str(member["id"]))) == 1


async def test_a_member_the_write_refuses_is_passed_over_at_the_next_write(
    app: FastAPI, client: httpx.AsyncClient, crew: Crew
) -> None:
    """A first choice is made on the counts alone: the rule's first member, busy with a
    booking of their own, is refused by the write, and the booking is chosen again, in the
    same batch, on the judgment of every member."""
    first = min(range(3), key=lambda i: _handle(crew, i))
    taken = await client.post(
        "/appointments/", json=guest_booking(crew.members[first][1]["id"], f"{DAY}T10:00:00Z")
    )
    assert taken.status_code == 201, taken.text
    with Commits(app) as commits:
        (found,) = await _one_batch(app, [_asked(crew, "10:00", 0)])
    assert _handles(crew, [found]) != [_handle(crew, first)]
    assert commits.count == 1  # the next write of the same batch
    assert await count_rows(app, Appointment) == 2


async def test_a_member_whose_terms_changed_is_decided_again_not_passed_over(
    app: FastAPI, client: httpx.AsyncClient, crew: Crew
) -> None:
    """The rule's first member changes their profile after the worker kept their terms:
    the write finds the choice made on stale terms, and the booking is decided again on
    fresh ones; it still goes to that member, who is free."""
    (warm,) = await _one_batch(app, [_asked(crew, "09:00", 0)])  # every member's terms kept
    given = _handles(crew, [warm])[0]
    second = min((i for i in range(3) if _handle(crew, i) != given), key=lambda i: _handle(crew, i))
    changed = await client.patch(
        "/providers/me", headers=crew.members[second][0].headers, json={"bio": "Changed."}
    )
    assert changed.status_code == 200, changed.text
    (found,) = await _one_batch(app, [_asked(crew, "11:00", 1)])
    assert _handles(crew, [found]) == [_handle(crew, second)]


async def test_a_revoked_token_is_refused_before_the_team_is_looked_up(
    app: FastAPI, client: httpx.AsyncClient, crew: Crew
) -> None:
    logged_out = await signed_in(client)
    revoked = await client.post("/auth/logout", headers=logged_out.headers)
    assert revoked.status_code in (200, 204)
    data = TeamBookingCreate.model_validate(
        {"service_id": crew.round_robin["id"], "start_datetime": f"{DAY}T10:00:00Z"}
    )
    writer = state_of(app).bookings
    for ref in (crew.handle, "no-such-team"):
        with pytest.raises(AppError) as refused:
            await writer.submit_pooled(
                claims=claims_of(app, logged_out),
                request=team_booking.request(ref, data),
                now=BOOKING_NOW,
            )
        assert refused.value.code == "invalid_token"


async def test_a_member_removed_before_a_booking_is_written_again_is_not_given_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    crew: Crew,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch the database refuses as a whole is written again job by job, each in a
    batch of its own, with the pool read at the first decision. The rule's first member,
    removed from the team meanwhile, still names a candidate there, but their share of the
    service was withdrawn with them: their terms changed, and the booking goes to another."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("on SQLite the batch decides and writes under the write lock: no meanwhile")
    first = min(range(3), key=lambda i: _handle(crew, i))
    real = write.lock

    async def removed_then_refused(session: Any, claims: list[write.Claim]) -> None:
        monkeypatch.setattr(write, "lock", real)  # once
        removed = await client.delete(
            f"/teams/{crew.team['id']}/members/{_handle(crew, first)}", headers=crew.admin.headers
        )
        assert removed.status_code == 204, removed.text
        raise DBAPIError("the batch's write", None, Exception("refused as a whole"))

    monkeypatch.setattr(write, "lock", removed_then_refused)
    found = await _one_batch(app, [_asked(crew, "10:00", 0), _asked(crew, "12:00", 1)])
    assert _handle(crew, first) not in _handles(crew, found)
    removed_id = uuid.UUID(str(crew.members[first][1]["id"]))
    assert await count_rows(app, Appointment, provider_id=removed_id) == 0

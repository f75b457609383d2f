"""The one write: several bookings in one call, each answered with what became of it
(written, or why not), in one transaction, without booking any of them again."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update

from slotwise.booking import create, write
from slotwise.booking.models import Appointment, ClientStanding
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import TermsCache
from slotwise.notifications.models import OutboxMessage
from slotwise.scheduling import Limits, Proposal, Reason
from tests.factories import BOOKING_NOW, Clock, bookable_provider, count_rows, guest_booking

DAY = "2027-03-03"


async def test_each_row_is_written_or_answered_with_its_reason(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    _, stale_provider = await bookable_provider(client)
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert taken.status_code == 201
    busy_guest = "busy@example.com"
    mine = guest_booking(provider["id"], f"{DAY}T12:00:00Z", email=busy_guest)
    assert (await client.post("/appointments/", json=mine)).status_code == 201
    state = app.state.slotwise
    guests = state.bookings.guests
    kept = TermsCache()
    async with state.db.transaction(writes=True) as session:
        session.add(
            ClientStanding(email="guest:blocked@example.com", no_show_count=3, blocked=True)
        )
    asked: list[tuple[str, str, str | None, dict[str, Any]]] = [
        ("free", f"{DAY}T09:00:00Z", None, {}),
        ("provider's time taken", f"{DAY}T10:00:00Z", None, {}),
        ("client's time taken", f"{DAY}T12:00:00Z", busy_guest, {"other": True}),
        ("blocked", f"{DAY}T13:00:00Z", "blocked@example.com", {}),
        ("stale", f"{DAY}T14:00:00Z", None, {"stale": True}),
        ("over the day's limit", f"{DAY}T15:00:00Z", None, {"day_limit": 2}),
    ]
    rows: list[write.Row] = []
    async with state.db.transaction(writes=True) as session:
        for _label, at, email, how in asked:
            target = stale_provider if how.get("other") or how.get("stale") else provider
            data = AppointmentCreate.model_validate(guest_booking(target["id"], at, email=email))
            known, _ = await kept.get(session, str(target["id"]), now=BOOKING_NOW)
            terms = known.terms
            if how.get("stale"):
                terms = replace(terms, version=terms.version - 1)
            if "day_limit" in how:
                terms = replace(terms, limits=Limits(per_day=how["day_limit"]))
            client_key = create.check_caller(None, data)
            proposal = create.propose(
                terms, user=None, data=data, client_key=client_key, now=BOOKING_NOW
            )
            assert isinstance(proposal, Proposal), proposal
            booked = create.new_booking(
                known, proposal, user=None, data=data, now=BOOKING_NOW, guests=guests
            )
            rows.append(create.row_of(session, booked, proposal, guests))
        statements: list[str] = []
        engine = state.db.engine.sync_engine

        def seen(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", seen)
        try:
            outcomes = await write.take(session, rows)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    reasons = [None if outcome is None else outcome.reason for outcome in outcomes]
    assert reasons == [
        None,
        Reason.SLOT_UNAVAILABLE,
        Reason.CLIENT_CONFLICT,
        Reason.CLIENT_BLOCKED,
        Reason.TERMS_CHANGED,
        Reason.LIMIT_REACHED,
    ]
    assert outcomes[5] is not None
    assert outcomes[5].details == {"limit": "per_day", "maximum": 2}
    # Two bookings were on the provider's day before the write; the limit counts those
    # (rows that share a limit are kept out of one batch: ``scheduling.arrange``).
    written = rows[0].appointment["id"]
    assert await count_rows(app, Appointment, id=written) == 1
    for row in rows[1:]:
        assert await count_rows(app, Appointment, id=row.appointment["id"]) == 0
    # The locks (PostgreSQL), the release of expired holds, and one judgment: no booking
    # tried again alone.
    assert sum("INSERT INTO appointments " in s for s in statements) <= 1, statements


async def test_a_guest_hold_past_its_time_is_released_by_the_write(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    held = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert held.status_code == 201
    async with app.state.slotwise.db.transaction(writes=True) as session:
        await session.execute(
            update(Appointment)
            .where(Appointment.id == uuid.UUID(held.json()["id"]))
            .values(status="pending_verification", hold_until=BOOKING_NOW)
        )
    again = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert again.status_code == 201, again.text


async def test_on_postgresql_the_judgment_searches_the_constraints_indexes_by_time(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, settings: Any
) -> None:
    """The planner picks the exclusion constraints' partial GiST indexes for the judgment;
    unless the overlap is written as their own range expression it searches them by
    provider (or client) alone, and a batch's cost grows with the appointments on file."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's plans")
    _, provider = await bookable_provider(client)
    made = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert made.status_code == 201
    state = app.state.slotwise
    claim = write.Claim(
        provider_id=uuid.UUID(provider["id"]),
        client_key="guest:someone@example.com",
        start_at=datetime(2027, 3, 3, 11, tzinfo=UTC),
        end_at=datetime(2027, 3, 3, 12, tzinfo=UTC),
        blocked_start_at=datetime(2027, 3, 3, 11, tzinfo=UTC),
        blocked_end_at=datetime(2027, 3, 3, 12, tzinfo=UTC),
        rules_version=0,
        now=BOOKING_NOW,
    )
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    engine = state.db.engine.sync_engine
    async with state.db.transaction(writes=False) as session:
        event.listen(engine, "before_cursor_execute", capture)
        try:
            await write.judge(session, [claim])
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        statement, params = seen[-1]
        connection = await session.connection()
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            row[0] for row in await connection.exec_driver_sql("EXPLAIN " + statement, params)
        )
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("provider_id" in c and "tstzrange(blocked_start_at" in c for c in conditions), plan
    assert any("client_key" in c and "tstzrange(start_at" in c for c in conditions), plan


async def test_a_probe_is_judged_as_a_row_and_never_written(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A probe (``write.probe``: a claim without its rows, for a booking its writer expects
    refused) gets the verdict a whole row would; clear, it is answered None and nothing of
    it is written, beside a whole row that is."""
    _, provider = await bookable_provider(client)
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert taken.status_code == 201
    state = app.state.slotwise
    guests = state.bookings.guests
    before = await count_rows(app, Appointment)
    messages_before = await count_rows(app, OutboxMessage)
    rows: list[write.Row] = []
    async with state.db.transaction(writes=True) as session:
        known, _ = await TermsCache().get(session, str(provider["id"]), now=BOOKING_NOW)
        for at, whole, stale in [
            ("09:00", True, False),
            ("11:00", False, False),
            ("10:00", False, False),
            ("13:00", False, True),
        ]:
            data = AppointmentCreate.model_validate(
                guest_booking(provider["id"], f"{DAY}T{at}:00Z")
            )
            terms = replace(known.terms, version=known.terms.version - 1) if stale else known.terms
            client_key = create.check_caller(None, data)
            proposal = create.propose(
                terms, user=None, data=data, client_key=client_key, now=BOOKING_NOW
            )
            assert isinstance(proposal, Proposal), proposal
            if whole:
                booked = create.new_booking(
                    known, proposal, user=None, data=data, now=BOOKING_NOW, guests=guests
                )
                rows.append(create.row_of(session, booked, proposal, guests))
            else:
                claim = create.claim_of(proposal, guest=True, now=BOOKING_NOW, guests=guests)
                rows.append(write.probe(claim))
        outcomes = await write.take(session, rows)
    reasons = [None if outcome is None else outcome.reason for outcome in outcomes]
    assert reasons == [None, None, Reason.SLOT_UNAVAILABLE, Reason.TERMS_CHANGED]
    assert await count_rows(app, Appointment) == before + 1
    assert await count_rows(app, Appointment, id=rows[0].appointment["id"]) == 1
    assert await count_rows(app, Appointment, start_at=datetime(2027, 3, 3, 11, tzinfo=UTC)) == 0
    written_messages = await count_rows(app, OutboxMessage) - messages_before
    assert written_messages == len(rows[0].messages) > 0

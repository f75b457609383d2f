"""Kept terms: a worker books against a provider's terms read earlier, and still no booking
is checked against terms that changed, whoever changed them; bookings do not void them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slotwise.config import Settings
from tests.factories import Account, Clock, bookable_provider, signed_in

DAY = "2027-03-03"  # a Wednesday, two days after BOOKING_NOW


@pytest.fixture
async def outside(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A connection of its own, as an operator's SQL or another process would have."""
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


async def run_sql(engine: AsyncEngine, statement: str, **values: object) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(statement), values)


async def version(engine: AsyncEngine, provider_id: str) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT rules_version FROM providers WHERE id = :id"),
            {"id": stored_id(engine, provider_id)},
        )
    assert found is not None
    return int(found)


def stored_id(engine: AsyncEngine, value: str) -> str:
    """A uuid as the database stores it (SQLite: 32 hex digits)."""
    return value if engine.dialect.name == "postgresql" else value.replace("-", "")


async def book(client: httpx.AsyncClient, booker: Account, profile: Any, at: str) -> httpx.Response:
    return await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T{at}:00Z"},
    )


@pytest.fixture
async def provider(client: httpx.AsyncClient, clock: Clock) -> tuple[Account, dict[str, Any]]:
    return await bookable_provider(client, session_duration_minutes=60)


CHANGES = {
    "weekly hours": "UPDATE weekly_patterns SET is_active = is_active WHERE provider_id = :p",
    "weekly hours deleted": "DELETE FROM weekly_patterns WHERE provider_id = :p",
    "the profile": "UPDATE providers SET bio = 'changed' WHERE id = :p",
    "the account": (
        "UPDATE users SET full_name = 'Renamed' WHERE id = (SELECT user_id FROM providers"
        " WHERE id = :p)"
    ),
    "a time off": (
        "INSERT INTO time_off (id, provider_id, start_date, end_date, created_at, updated_at)"
        " SELECT :new, id, '2027-03-10', '2027-03-11', created_at, updated_at FROM providers"
        " WHERE id = :p"
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_every_change_to_the_terms_raises_the_rules_version(
    outside: AsyncEngine, provider: tuple[Account, Any], change: str
) -> None:
    _account, profile = provider
    before = await version(outside, profile["id"])
    new_id = "0192f0c4-7a59-7c3e-9b5e-2f1d3c4b5a69"
    await run_sql(
        outside,
        CHANGES[change],
        p=stored_id(outside, profile["id"]),
        new=stored_id(outside, new_id),
    )
    assert await version(outside, profile["id"]) > before


async def test_a_booking_leaves_the_rules_version_alone(
    client: httpx.AsyncClient, outside: AsyncEngine, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    before = await version(outside, profile["id"])
    booker = await signed_in(client)
    booked = await book(client, booker, profile, "10:00")
    assert booked.status_code == 201, booked.text
    cancelled = await client.delete(f"/appointments/{booked.json()['id']}", headers=booker.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert await version(outside, profile["id"]) == before


async def test_a_booking_with_kept_terms_reads_no_rules(
    client: httpx.AsyncClient, app: FastAPI, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    booker = await signed_in(client)
    assert (await book(client, booker, profile, "10:00")).status_code == 201
    statements: list[str] = []
    engine = app.state.slotwise.db.engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    assert (await book(client, booker, profile, "12:00")).status_code == 201
    event.remove(engine, "before_cursor_execute", _seen)
    read = [s for s in statements if s.startswith("SELECT")]
    for table in ("weekly_patterns", "date_overrides", "time_off", "services"):
        assert not any(f"FROM {table}" in s for s in read), table
    assert not any(s.startswith("SELECT providers.") for s in read)  # no profile load


REFUSALS = {
    "hours withdrawn": (
        "DELETE FROM weekly_patterns WHERE provider_id = :p",
        422,
        "outside_availability",
    ),
    "not accepting bookings": (
        "UPDATE providers SET accepting_bookings = false WHERE id = :p",
        409,
        "provider_not_accepting",
    ),
    "longer notice": (
        "UPDATE providers SET min_notice_minutes = 100000 WHERE id = :p",
        422,
        "too_soon",
    ),
    "suspended": (
        "UPDATE users SET is_blocked = true WHERE id = (SELECT user_id FROM providers"
        " WHERE id = :p)",
        404,
        "provider_not_found",
    ),
}


@pytest.mark.parametrize("change", list(REFUSALS))
async def test_a_change_made_elsewhere_binds_the_next_booking_at_once(
    client: httpx.AsyncClient,
    outside: AsyncEngine,
    provider: tuple[Account, Any],
    change: str,
) -> None:
    """No waiting for a notice: the booking's own transaction finds the kept terms stale."""
    statement, status, code = REFUSALS[change]
    _account, profile = provider
    booker = await signed_in(client)
    assert (await book(client, booker, profile, "10:00")).status_code == 201  # terms kept
    await run_sql(outside, statement, p=stored_id(outside, profile["id"]))
    refused = await book(client, booker, profile, "12:00")
    assert refused.status_code == status, refused.text
    assert refused.json()["code"] == code


async def test_a_refusal_from_kept_terms_is_checked_against_fresh_ones(
    client: httpx.AsyncClient, outside: AsyncEngine, provider: tuple[Account, Any]
) -> None:
    account, profile = provider
    await client.put("/providers/me", headers=account.headers, json={"accepting_bookings": False})
    booker = await signed_in(client)
    refused = await book(client, booker, profile, "10:00")
    assert refused.status_code == 409  # and the terms that say so are kept
    await run_sql(
        outside,
        "UPDATE providers SET accepting_bookings = true WHERE id = :p",
        p=stored_id(outside, profile["id"]),
    )
    booked = await book(client, booker, profile, "10:00")
    assert booked.status_code == 201, booked.text


async def test_a_reschedule_is_checked_against_current_terms(
    client: httpx.AsyncClient, outside: AsyncEngine, provider: tuple[Account, Any]
) -> None:
    _account, profile = provider
    booker = await signed_in(client)
    booked = await book(client, booker, profile, "10:00")
    await run_sql(
        outside,
        "UPDATE weekly_patterns SET is_active = false WHERE provider_id = :p",
        p=stored_id(outside, profile["id"]),
    )
    moved = await client.post(
        f"/appointments/{booked.json()['id']}/reschedule",
        headers=booker.headers,
        json={"new_start_time": f"{DAY}T14:00:00Z", "reason": "clash"},
    )
    assert moved.status_code == 422, moved.text
    assert moved.json()["code"] == "outside_availability"


async def test_a_refusal_of_the_providers_own_user_is_checked_against_fresh_terms(
    client: httpx.AsyncClient, outside: AsyncEngine, provider: tuple[Account, Any]
) -> None:
    """Whose profile it is is part of the terms: the profile handed to another account
    (by an operator's SQL), its former owner may book it at once."""
    former, profile = provider
    booker = await signed_in(client)
    assert (await book(client, booker, profile, "10:00")).status_code == 201  # terms kept
    heir = await signed_in(client)
    await run_sql(
        outside, "UPDATE users SET role = 'provider' WHERE id = :u", u=stored_id(outside, heir.id)
    )
    await run_sql(
        outside,
        "UPDATE providers SET user_id = :u WHERE id = :p",
        u=stored_id(outside, heir.id),
        p=stored_id(outside, profile["id"]),
    )
    booked = await book(client, former, profile, "12:00")
    assert booked.status_code == 201, booked.text


async def test_a_provider_restored_under_its_id_is_not_taken_for_the_kept_one(
    client: httpx.AsyncClient, outside: AsyncEngine, provider: tuple[Account, Any]
) -> None:
    """An operator deletes a profile and inserts its row again (a restore), without its
    hours: the row, even with the number it had, must not pass for the terms kept of it."""
    _account, profile = provider
    booker = await signed_in(client)
    kept = await book(client, booker, profile, "20:00")  # outside its hours: terms kept
    assert kept.json()["code"] == "outside_availability"
    p = stored_id(outside, profile["id"])
    async with outside.begin() as connection:
        saved = (
            (await connection.execute(text("SELECT * FROM providers WHERE id = :p"), {"p": p}))
            .mappings()
            .one()
        )
        await connection.execute(
            text("DELETE FROM weekly_patterns WHERE provider_id = :p"), {"p": p}
        )
        await connection.execute(text("DELETE FROM providers WHERE id = :p"), {"p": p})
        columns = ", ".join(saved)
        values = ", ".join(f":{column}" for column in saved)
        await connection.execute(
            text(f"INSERT INTO providers ({columns}) VALUES ({values})"),  # noqa: S608
            dict(saved),
        )
    refused = await book(client, booker, profile, "12:00")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "outside_availability"

"""What a transaction keeps until it ends (``db.transaction_memo``): the booking locks it
holds, asked for once (``repository.lock_in_order``), the expired holds it released
(``repository.lock_and_release``), and the webhook subscriptions it read
(``webhooks.queue.enqueue``)."""

from __future__ import annotations

import gc
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from slotwise.booking import holds, repository, waitlist_repository
from slotwise.booking.schemas import HoldCreate
from slotwise.db import Database, transaction_memo
from tests.booking.test_change import statements_on
from tests.factories import BOOKING_NOW, Clock, bookable_provider

PROVIDER = uuid.uuid4()
OTHER = uuid.uuid4()
ONE = text("SELECT 1")


@pytest.fixture
async def database(database_url: str) -> Any:
    db = Database(database_url)
    yield db
    await db.dispose()


def locks_asked(asked: list[str]) -> list[str]:
    """The lock statements among those sent."""
    return [statement for statement in asked if "pg_advisory_xact_lock" in statement]


def _postgresql_only(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("booking locks are PostgreSQL's; SQLite serializes its writers whole")


async def test_a_memo_lasts_as_long_as_its_transaction(database: Database) -> None:
    session = database.session(writes=False)
    try:
        assert transaction_memo(session, "k") == {}  # no transaction yet: nothing kept
        transaction_memo(session, "k")["nothing"] = True
        await session.execute(ONE)
        kept = transaction_memo(session, "k")
        assert kept == {}
        kept["seen"] = True
        assert transaction_memo(session, "k") is kept
        assert transaction_memo(session, "other") == {}
        await session.commit()
        await session.execute(ONE)  # the session's next transaction
        assert transaction_memo(session, "k") == {}
    finally:
        await session.close()


async def test_locks_held_are_not_asked_for_again(database: Database) -> None:
    _postgresql_only(database)
    with statements_on(database) as seen:
        async with database.transaction(writes=True) as session:
            await repository.lock_in_order(session, [PROVIDER], ["client@example.com"])
            await repository.lock_provider(session, PROVIDER)
            await repository.lock_in_order(session, [PROVIDER], ["client@example.com"])
            assert len(locks_asked(seen)) == 1
            await repository.lock_in_order(session, [PROVIDER, OTHER])  # one more: all asked
            assert len(locks_asked(seen)) == 2
            await repository.lock_provider(session, OTHER)
            assert len(locks_asked(seen)) == 2
        async with database.transaction(writes=True) as session:  # held no more
            await repository.lock_provider(session, PROVIDER)
        assert len(locks_asked(seen)) == 3


async def test_the_locks_a_write_takes_are_not_asked_for_again(database: Database) -> None:
    """A write's first statement takes its providers' and clients' locks (and releases
    their expired holds): a hand-on after it, which locks the provider, asks nothing."""
    _postgresql_only(database)
    with statements_on(database) as seen:
        async with database.transaction(writes=True) as session:
            now = datetime.now(UTC)
            await repository.lock_and_release(session, [PROVIDER], ["client@example.com"], now=now)
            await repository.lock_provider(session, PROVIDER)
            await repository.lock_in_order(session, [PROVIDER], ["client@example.com"])
            assert len(locks_asked(seen)) == 1
            await repository.lock_provider(session, OTHER)
            assert len(locks_asked(seen)) == 2


def releases_asked(asked: list[str]) -> list[str]:
    """The releases of expired holds among the statements sent (a write's first step)."""
    return [statement for statement in asked if "appointments.hold_until <=" in statement]


async def test_a_release_made_is_not_asked_for_again(database: Database) -> None:
    """Expired holds released (and, on PostgreSQL, the locks taken) for some providers and
    clients at some time: a later write's first step for some of them, at that time or
    before, asks nothing; for another client, at a later time, or after a release inside a
    savepoint (its rollback may undo it), it asks again, as it does in a new transaction."""
    now = datetime.now(UTC)
    earlier, later = now - timedelta(seconds=1), now + timedelta(seconds=1)
    with statements_on(database) as seen:
        async with database.transaction(writes=True) as session:
            await repository.lock_and_release(session, [PROVIDER, OTHER], ["a", "b"], now=now)
            await repository.lock_and_release(session, [PROVIDER], ["b"], now=now)
            await repository.lock_and_release(session, [OTHER], [], now=earlier)
            assert len(releases_asked(seen)) == 1
            await repository.lock_and_release(session, [PROVIDER], ["c"], now=now)
            assert len(releases_asked(seen)) == 2
            await repository.lock_and_release(session, [PROVIDER], ["c"], now=later)
            assert len(releases_asked(seen)) == 3
            # Its locks held from outside the savepoint (PostgreSQL), so that only the memo
            # of what was released decides whether to ask again.
            await repository.lock_in_order(session, [OTHER], ["d"])
            savepoint = await session.begin_nested()
            await repository.lock_and_release(session, [OTHER], ["d"], now=now)
            await savepoint.rollback()
            await repository.lock_and_release(session, [OTHER], ["d"], now=now)
            assert len(releases_asked(seen)) == 5
        async with database.transaction(writes=True) as session:
            await repository.lock_and_release(session, [PROVIDER], ["b"], now=now)
        assert len(releases_asked(seen)) == 6


async def test_a_hold_written_after_a_release_is_released_again_if_asked(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A release covers the holds on file when it ran: a hold written after it in the same
    transaction (a waitlist's offer holds a time until it starts, which may be past the
    release's clock) has the next write's first step ask again for its provider and
    client."""
    _, provider = await bookable_provider(client)
    state = app.state.slotwise
    asked = HoldCreate.model_validate(
        {"provider_id": provider["id"], "start_datetime": "2027-03-03T10:00:00Z"}
    )
    with statements_on(state.db) as seen:
        async with state.db.transaction(writes=True) as session:
            held = await holds.take(
                session,
                kept_terms=state.terms,
                user=None,
                address="203.0.113.7",
                data=asked,
                now=BOOKING_NOW,
                policy=holds.HoldPolicy.from_settings(state.settings),
            )
            assert len(releases_asked(seen)) == 1  # the hold's own write released first
            mine = ([held.hold.provider_id], [held.hold.client_key])
            await repository.lock_and_release(session, *mine, now=BOOKING_NOW)
            assert len(releases_asked(seen)) == 2
            await repository.lock_and_release(session, *mine, now=BOOKING_NOW)
            assert len(releases_asked(seen)) == 2


async def test_a_lock_skipped_is_still_held(database: Database) -> None:
    """The memo says what the transaction holds: another transaction still waits for it."""
    _postgresql_only(database)
    async with database.transaction(writes=True) as holder:
        await repository.lock_provider(holder, PROVIDER)
        await repository.lock_provider(holder, PROVIDER)  # not asked again, still held
        async with database.transaction(writes=True) as other:
            await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await repository.lock_provider(other, PROVIDER)


async def test_a_lock_taken_in_a_savepoint_is_asked_for_again(database: Database) -> None:
    """A savepoint rolled back may release what it locked: only locks taken outside one
    count as held."""
    _postgresql_only(database)
    with statements_on(database) as seen:
        async with database.transaction(writes=True) as session:
            await session.execute(ONE)
            savepoint = await session.begin_nested()
            await repository.lock_provider(session, PROVIDER)
            await savepoint.rollback()
            await repository.lock_provider(session, PROVIDER)
            await repository.lock_provider(session, PROVIDER)
    assert len(locks_asked(seen)) == 2


async def test_a_line_found_empty_inside_a_savepoint_is_not_kept(database: Database) -> None:
    """What a savepoint found of a provider's line may not outlive it (its rollback may
    release the lock that kept the line shut, or put back an entry it took out of line);
    what the transaction itself found is kept until it ends."""
    async with database.transaction(writes=True) as session:
        await session.execute(ONE)
        savepoint = await session.begin_nested()
        waitlist_repository.note_lines(session, {PROVIDER: False})
        await savepoint.rollback()
        assert waitlist_repository.nobody_waits(session) == set()
        waitlist_repository.note_lines(session, {PROVIDER: False})
        assert waitlist_repository.nobody_waits(session) == {PROVIDER}
    async with database.transaction(writes=True) as session:
        await session.execute(ONE)
        assert waitlist_repository.nobody_waits(session) == set()


async def test_a_memo_keeps_no_session_alive(database: Database) -> None:
    """Dropped, a session that kept a memo is freed at once, not at the next full
    collection (the served worker runs few: docs/benchmarks.md, "Garbage collection")."""
    gc.disable()
    try:
        async with database.transaction(writes=False) as session:
            await session.execute(ONE)
            transaction_memo(session, "k")["seen"] = True
            gone = weakref.ref(session.sync_session)
        del session
        assert gone() is None
    finally:
        gc.enable()

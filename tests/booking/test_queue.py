"""The booking queue: bookings that arrive together are decided and written in one
transaction, and each still gets the answer it would have got alone; nothing is booked
again alone to learn why it failed."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.exc import OperationalError

from slotwise.auth import callers
from slotwise.auth.tokens import TokenClaims
from slotwise.booking import create, queue, repository, write
from slotwise.booking.create import Booked
from slotwise.booking.queue import BookingQueue, _Job
from slotwise.booking.schemas import AppointmentCreate
from slotwise.booking.terms import TermsCache
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.errors import AppError
from slotwise.main import create_app
from slotwise.models import Appointment, AppointmentEvent, OutboxMessage
from slotwise.state import AppState, get_now
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_change import statements_of
from tests.conftest import make_settings
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    count_rows,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-03"
PAST = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)  # before BOOKING_NOW


def state_of(app: FastAPI) -> AppState:
    state: AppState = app.state.slotwise
    return state


class Commits:
    """Counts the transactions the application's sessions commit (a COMMIT the database
    refuses is not one: on SQLite a write deferred to the COMMIT's trip fails there)."""

    def __init__(self, app: FastAPI) -> None:
        self.session_class = state_of(app).db.session_class
        self.count = 0

    def _committed(self, _session: object) -> None:
        self.count += 1

    def __enter__(self) -> Commits:
        event.listen(self.session_class, "after_commit", self._committed)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.session_class, "after_commit", self._committed)


def claims_of(app: FastAPI, account: Account) -> TokenClaims:
    return state_of(app).access_tokens.claims(account.access_token, now=datetime.now(UTC))


def asked(provider: dict[str, Any], at: str, **extra: Any) -> AppointmentCreate:
    return AppointmentCreate.model_validate(
        {"provider_id": provider["id"], "start_datetime": f"{DAY}T{at}:00Z", **extra}
    )


async def answers(
    app: FastAPI, jobs: list[tuple[Account | None, AppointmentCreate]]
) -> list[Booked | BaseException]:
    """The jobs handed to the worker's writer at once: they reach it as one batch (one
    writer: two would share them, see test_two_writers_share_a_burst)."""
    writer = state_of(app).bookings
    writer.writers = 1
    found = await asyncio.gather(
        *(
            writer.submit(
                claims=claims_of(app, account) if account else None, data=data, now=BOOKING_NOW
            )
            for account, data in jobs
        ),
        return_exceptions=True,
    )
    await writer.aclose()  # every batch committed (a refusal is answered before its commit)
    return found


def code(answer: Booked | BaseException) -> str:
    if isinstance(answer, Booked):
        return "booked"
    assert isinstance(answer, AppError), answer
    return answer.code


async def test_bookings_arriving_together_are_committed_together(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    clients = [await signed_in(client) for _ in range(8)]
    with Commits(app) as commits:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/appointments/",
                    headers=account.headers,
                    json={
                        "provider_id": provider["id"],
                        "start_datetime": f"{DAY}T{9 + i:02d}:00:00Z",
                    },
                )
                for i, account in enumerate(clients)
            )
        )
    assert [r.status_code for r in responses] == [201] * 8, [r.json() for r in responses]
    assert commits.count < 8  # one transaction per booking would be 8
    # Each is whole: the appointment, its history and its messages.
    for response in responses:
        booked_id = uuid.UUID(response.json()["id"])
        assert await count_rows(app, AppointmentEvent, appointment_id=booked_id) == 1
        kinds = await count_rows(app, OutboxMessage, appointment_id=booked_id)
        assert kinds >= 2  # the provider's notice, the client's confirmation (and reminders)
    assert await count_rows(app, Appointment) == 8


async def test_every_booking_of_a_batch_gets_its_own_answer(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client)
    _, other_provider = await bookable_provider(client)
    first, second, third, logged_out = [await signed_in(client) for _ in range(4)]
    revoked = await client.post("/auth/logout", headers=logged_out.headers)
    assert revoked.status_code in (200, 204)
    jobs: list[tuple[Account | None, AppointmentCreate]] = [
        (first, asked(provider, "10:00")),
        (second, asked(provider, "11:00")),
        (third, asked(provider, "10:00")),  # the same slot as the first, in the same batch
        (first, asked(other_provider, "10:00")),  # the first client is busy then
        (logged_out, asked(provider, "12:00")),
        (owner, asked(provider, "13:00")),  # a provider cannot book themself
        (second, asked(provider, "10:00").model_copy(update={"start_datetime": PAST})),
        (None, asked(provider, "14:00")),  # a guest without their details
        (third, asked(provider, "15:00")),
    ]
    with Commits(app) as commits:
        found = await answers(app, jobs)
    assert [code(answer) for answer in found] == [
        "booked",
        "booked",
        "slot_unavailable",
        "client_conflict",
        "invalid_token",
        "cannot_book_yourself",
        "too_soon",
        "guest_details_required",
        "booked",
    ]
    # Two transactions: the batch (the bookings competing with one it wrote, for the same
    # slot or the same client's time, refused once it committed), and the next one, with
    # the jobs refused on terms kept from before, refused again on fresh ones. None was
    # written alone.
    assert commits.count == 2
    assert await count_rows(app, Appointment) == 3


async def test_a_kept_refusal_is_confirmed_on_fresh_terms(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client, accepting_bookings=False)
    booker = await signed_in(client)
    [refused] = await answers(app, [(booker, asked(provider, "10:00"))])
    assert code(refused) == "provider_not_accepting"
    opened = await client.patch(
        "/providers/me", headers=owner.headers, json={"accepting_bookings": True}
    )
    assert opened.status_code == 200
    [booked] = await answers(app, [(booker, asked(provider, "10:00"))])
    assert code(booked) == "booked"


async def test_a_time_taken_meanwhile_is_refused_and_the_rest_written(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: Clock,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A booking decided free whose time another worker takes before the batch's write (here:
    a booking committed between the decisions and the write) is refused by the write, which
    judges under its locks; the others are written, in the same transaction."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("on SQLite the batch decides and writes under the write lock: no meanwhile")
    _, provider = await bookable_provider(client)
    earlier, first, second = [await signed_in(client) for _ in range(3)]
    real = write.take

    async def another_worker_books_first(
        session: Any, rows: list[write.Row], **given: Any
    ) -> list[Any]:
        monkeypatch.setattr(write, "take", real)  # once
        writer = state_of(app).bookings
        async with writer.database.transaction(writes=True) as other:  # another worker's
            user = await callers.user_for_claims(other, None, claims_of(app, earlier))
            await create.book(
                other,
                kept_terms=TermsCache(),
                user=user,
                data=asked(provider, "10:00"),
                now=BOOKING_NOW,
                guests=writer.guests,
            )
        return await real(session, rows, **given)

    monkeypatch.setattr(write, "take", another_worker_books_first)
    with Commits(app) as commits:
        found = await answers(
            app, [(first, asked(provider, "09:00")), (second, asked(provider, "10:00"))]
        )
    assert [code(answer) for answer in found] == ["booked", "slot_unavailable"]
    assert commits.count == 2  # the other worker's, and the batch: nothing alone
    assert await count_rows(app, Appointment) == 2
    assert await count_rows(app, Appointment, client_key=second.email) == 0


async def test_a_batch_the_database_refuses_as_a_whole_is_written_one_by_one(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that is not about time (here a foreign key: the row names no user) fails
    the batch's write as a whole; its bookings then go through the write one at a time, so
    one cannot fail another again."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    real = create.new_booking
    broken_once: list[bool] = []

    def broken(known: Any, proposal: Any, **given: Any) -> Booked:
        booked = real(known, proposal, **given)
        if proposal.client_key == second.email and not broken_once:
            broken_once.append(True)
            booked.appointment.client_id = uuid.uuid4()
        return booked

    monkeypatch.setattr(create, "new_booking", broken)
    with Commits(app) as commits:
        found = await answers(
            app, [(first, asked(provider, "09:00")), (second, asked(provider, "10:00"))]
        )
    assert [code(answer) for answer in found] == ["booked", "booked"]
    assert commits.count == 2  # nothing of the batch; each booking in a batch of its own
    assert await count_rows(app, Appointment) == 2
    assert await count_rows(app, AppointmentEvent) == 2
    assert Counter(a.appointment.client_key for a in found if isinstance(a, Booked)) == {
        first.email: 1,
        second.email: 1,
    }


async def test_closing_waits_for_the_bookings_under_way(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    booker = await signed_in(client)
    writer = state_of(app).bookings
    pending = asyncio.ensure_future(answers(app, [(booker, asked(provider, "10:00"))]))
    await asyncio.sleep(0)  # queued; its writer has started
    await writer.aclose()
    [booked] = await pending
    assert code(booked) == "booked"
    assert await count_rows(app, Appointment) == 1


async def test_a_token_revoked_in_redis_is_refused_in_a_batch(
    database_url: str, redis_url: str
) -> None:
    """With Redis configured the denylist lives there; the batch asks it for every token."""
    # (Without rate limits: with Redis they would be shared with every other run of this test.)
    app = create_app(make_settings(database_url, redis_url=redis_url, rate_limit_enabled=False))
    app.dependency_overrides[get_now] = Clock(BOOKING_NOW)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
            _, provider = await bookable_provider(client)
            kept, logged_out = await signed_in(client), await signed_in(client)
            revoked = await client.post("/auth/logout", headers=logged_out.headers)
            assert revoked.status_code in (200, 204)
            found = await answers(
                app, [(kept, asked(provider, "10:00")), (logged_out, asked(provider, "11:00"))]
            )
    finally:
        await state_of(app).aclose()
    assert [code(answer) for answer in found] == ["booked", "invalid_token"]


async def test_a_database_failure_fails_each_booking_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)

    async def database_gone(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT pg_advisory_xact_lock(...)", {}, ConnectionError("gone"))

    monkeypatch.setattr(repository, "lock_and_release", database_gone)
    found = await answers(
        app, [(first, asked(provider, "10:00")), (second, asked(provider, "11:00"))]
    )
    # The batch failed as a whole, then each booking in a batch of its own: each answered
    # with the failure
    # (the API's 503 database_unavailable), nothing written.
    assert all(isinstance(answer, OperationalError) for answer in found), found
    assert await count_rows(app, Appointment) == 0
    assert await count_rows(app, OutboxMessage) == 0
    monkeypatch.undo()
    [booked] = await answers(app, [(first, asked(provider, "10:00"))])
    assert code(booked) == "booked"  # the writer goes on once the database is back


class Takes:
    """What each call of the one write was given: whether each row was a probe."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.probes: list[list[bool]] = []
        real = write.take

        async def take(session: Any, rows: list[write.Row], **given: Any) -> list[Any]:
            self.probes.append([row.probe for row in rows])
            return await real(session, rows, **given)

        monkeypatch.setattr(write, "take", take)


async def test_a_time_the_last_write_took_is_judged_without_building_rows(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst for a slot just taken: the one booking of it the batch admits goes to the
    write as a probe (its claim alone), and none of the burst's rows are built."""
    _, provider = await bookable_provider(client)
    first, *others = [await signed_in(client) for _ in range(4)]
    [booked] = await answers(app, [(first, asked(provider, "10:00"))])
    assert code(booked) == "booked"
    built: list[AppointmentCreate] = []
    real_booking = create.new_booking

    def new_booking(*args: Any, **given: Any) -> Booked:
        built.append(given["data"])
        return real_booking(*args, **given)

    monkeypatch.setattr(create, "new_booking", new_booking)
    takes = Takes(monkeypatch)
    found = await answers(app, [(account, asked(provider, "10:00")) for account in others])
    assert [code(answer) for answer in found] == ["slot_unavailable"] * 3
    assert takes.probes == [[True]]  # one admitted, the others settled by its fate
    assert built == []
    assert await count_rows(app, Appointment) == 1


async def test_a_probe_that_finds_the_time_free_is_written_whole_in_its_batch(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's memory of taken times only spares work: a time freed behind its back
    (another worker cancels) is found clear by the probe, and the booking is written whole
    at the batch's next write; the one that waited on it is refused as before."""
    _, provider = await bookable_provider(client)
    first, second, third = [await signed_in(client) for _ in range(3)]
    [booked] = await answers(app, [(first, asked(provider, "10:00"))])
    assert isinstance(booked, Booked)
    async with state_of(app).db.transaction(writes=True) as session:  # another worker's
        await session.execute(
            update(Appointment)
            .where(Appointment.id == booked.appointment.id)
            .values(status="cancelled")
        )
    takes = Takes(monkeypatch)
    with Commits(app) as commits:
        found = await answers(
            app, [(second, asked(provider, "10:00")), (third, asked(provider, "10:00"))]
        )
    assert [code(answer) for answer in found] == ["booked", "slot_unavailable"]
    assert takes.probes == [[True], [False]]
    assert commits.count == 1
    written = found[0]
    assert isinstance(written, Booked)
    assert await count_rows(app, AppointmentEvent, appointment_id=written.appointment.id) == 1
    assert await count_rows(app, OutboxMessage, appointment_id=written.appointment.id) >= 2


def enqueue(writer: BookingQueue, count: int) -> None:
    """Jobs queued as ``book`` queues them (no writer started: ``_fair_share`` is asked)."""
    loop = asyncio.get_running_loop()
    data = AppointmentCreate.model_validate(
        {"provider_id": str(uuid.uuid4()), "start_datetime": f"{DAY}T10:00:00Z"}
    )
    for _ in range(count):
        writer._queue.append(_Job(None, data, BOOKING_NOW, loop.create_future()))
        writer._arrived.set()


async def test_two_writers_share_a_burst(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    bookers = [await signed_in(client) for _ in range(8)]
    writer = BookingQueue(state_of(app).db, state_of(app).terms, None, writers=2)
    with Commits(app) as commits:
        found = await asyncio.gather(
            *(
                writer.submit(
                    claims=claims_of(app, booker),
                    data=asked(provider, f"{9 + i:02d}:00"),
                    now=BOOKING_NOW,
                )
                for i, booker in enumerate(bookers)
            )
        )
    assert [code(answer) for answer in found] == ["booked"] * 8
    assert commits.count == 2  # four bookings each, written side by side


async def test_a_writer_waits_briefly_for_the_clients_it_just_answered() -> None:
    writer = BookingQueue(Database("sqlite+aiosqlite://"), TermsCache(), None, writers=2)
    enqueue(writer, 3)
    # Ten answered: an even share of the thirteen in play is seven.
    share = asyncio.ensure_future(writer._fair_share(returning=10))
    await asyncio.sleep(0)
    assert not share.done()
    enqueue(writer, 4)
    assert await share == 7
    enqueue(writer, 2)  # nine queued now
    assert await writer._fair_share(returning=0) == 5  # nothing to wait for


async def test_a_writer_waits_no_longer_than_its_coalescing_time() -> None:
    writer = BookingQueue(Database("sqlite+aiosqlite://"), TermsCache(), None, writers=2)
    loop = asyncio.get_running_loop()
    enqueue(writer, 1)
    at_once = writer._fair_share(returning=0)  # a lone booking goes without waiting at all:
    with pytest.raises(StopIteration) as returned:  # its share is known without suspending
        at_once.send(None)
    assert returned.value.value == 1
    started = loop.time()
    assert await writer._fair_share(returning=9) == 1  # the others did not come back
    assert loop.time() - started >= queue.COALESCE_SECONDS * 0.99  # timers may fire a hair early


async def test_a_batchs_webhook_events_reach_their_subscribers(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    """A batch of bookings of two providers, one whose owner subscribes and one only an
    admin's subscription to every provider hears: each booking's booking.created reaches
    whoever wants it. On PostgreSQL the write's own statement says who subscribes
    (``queue.wanted_by``), so nothing more is asked; SQLite asks once."""
    owner, subscribed = await bookable_provider(client)
    _, other = await bookable_provider(client)
    created = {"url": "https://hooks.example.com/in", "event_types": ["booking.created"]}
    assert (await client.post("/webhooks", headers=owner.headers, json=created)).status_code == 201
    clients = [await signed_in(client) for _ in range(4)]
    jobs = [
        (account, asked(subscribed if i % 2 == 0 else other, f"{9 + i:02d}:00"))
        for i, account in enumerate(clients)
    ]
    with statements_of(app) as seen:
        found = await answers(app, jobs)
    assert [code(answer) for answer in found] == ["booked"] * 4
    deliveries = await count_rows(app, WebhookDelivery, event_type="booking.created")
    assert deliveries == 2  # the subscribed provider's two; nobody hears the other's
    on_postgresql = state_of(app).db.engine.dialect.name == "postgresql"
    asked_who = [s for s in seen if s.startswith("SELECT DISTINCT webhook_subscriptions")]
    assert len(asked_who) == (0 if on_postgresql else 1)
    admin = await signed_in_admin(client, settings)
    assert (await client.post("/webhooks", headers=admin.headers, json=created)).status_code == 201
    later = [(account, asked(other, f"{14 + i}:00")) for i, account in enumerate(clients[:2])]
    assert [code(answer) for answer in await answers(app, later)] == ["booked"] * 2
    # Now also the admin's hook: two for the other provider's, and the owner's two before.
    assert await count_rows(app, WebhookDelivery, event_type="booking.created") == 4

"""Cancellations through the booking queue: a signed-in caller's cancellation is a job of
the same batches as the bookings, decided and written in their transaction, each answered
on its own."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from slotwise.booking import create, queue, waitlist, waitlist_repository
from slotwise.booking.create import Booked
from slotwise.booking.models import (
    Appointment,
    AppointmentEvent,
    Status,
    WaitlistEntry,
    WaitlistStatus,
)
from slotwise.booking.schemas import AppointmentCreate
from slotwise.errors import AppError
from slotwise.models import OutboxMessage
from slotwise.notifications import outbox
from slotwise.notifications.models import OutboxStatus
from slotwise.scheduling import Interval
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_change import statements_of
from tests.booking.test_queue import DAY, Commits, Takes, asked, claims_of, state_of
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
)

Job = tuple[Account, AppointmentCreate | uuid.UUID]


async def together(app: FastAPI, jobs: list[Job]) -> list[Any]:
    """Bookings (a body) and cancellations (an appointment's id) handed to the worker's one
    writer at once: they reach it as one batch."""
    writer = state_of(app).bookings
    writer.writers = 1

    def submitted(account: Account, job: AppointmentCreate | uuid.UUID) -> Any:
        claims = claims_of(app, account)
        if isinstance(job, uuid.UUID):
            return writer.cancel(claims=claims, appointment_id=job, reason="Away", now=BOOKING_NOW)
        return writer.submit(claims=claims, data=job, now=BOOKING_NOW)

    found = await asyncio.gather(
        *(submitted(account, job) for account, job in jobs), return_exceptions=True
    )
    await writer.aclose()  # every batch committed (a refusal is answered before its commit)
    return found


def outcome(answer: Any) -> str:
    if isinstance(answer, Booked):
        return "booked"
    if isinstance(answer, Appointment):
        return answer.status.value
    assert isinstance(answer, AppError), answer
    return answer.code


async def booked(
    client: httpx.AsyncClient, account: Account, provider: Any, at: str, *, day: str = DAY
) -> uuid.UUID:
    response = await client.post(
        "/appointments/",
        headers=account.headers,
        json={"provider_id": provider["id"], "start_datetime": f"{day}T{at}:00Z"},
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def hooked(client: httpx.AsyncClient, owner: Account, *event_types: str) -> uuid.UUID:
    """A webhook subscription of the provider ``owner`` to these events: its id."""
    response = await client.post(
        "/webhooks",
        headers=owner.headers,
        json={"url": "https://hooks.example.com/in", "event_types": list(event_types)},
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def status_of(app: FastAPI, appointment_id: uuid.UUID) -> Status:
    async with state_of(app).db.transaction(writes=False) as session:
        found = await session.scalar(
            select(Appointment.status).where(Appointment.id == appointment_id)
        )
    assert found is not None
    return found


def break_first_booking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first booking built from now on names no user (a foreign key the database
    refuses, so its whole batch with it); the later ones are as made."""
    real = create.new_booking
    broken_once: list[bool] = []

    def broken(known: Any, proposal: Any, **given: Any) -> Booked:
        made = real(known, proposal, **given)
        if not broken_once:
            broken_once.append(True)
            made.appointment.client_id = uuid.uuid4()
        return made

    monkeypatch.setattr(create, "new_booking", broken)


async def test_bookings_and_cancellations_arriving_together_are_committed_together(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    owner, provider = await bookable_provider(client)
    first, second, third = [await signed_in(client) for _ in range(3)]
    mine = await booked(client, first, provider, "09:00")
    theirs = await booked(client, second, provider, "10:00")
    messages_before = await count_rows(app, OutboxMessage, appointment_id=theirs)
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (third, asked(provider, "11:00")),
                (first, mine),  # a client cancels their own
                (owner, theirs),  # the provider cancels a client's
                (second, asked(provider, "12:00")),
            ],
        )
    assert [outcome(answer) for answer in found] == ["booked", "cancelled", "cancelled", "booked"]
    assert commits.count == 1
    for cancelled in (mine, theirs):
        assert await status_of(app, cancelled) is Status.CANCELLED
        assert await count_rows(app, AppointmentEvent, appointment_id=cancelled) == 2
    # The client hears of the provider's cancellation, as a lone one would be told.
    assert await count_rows(app, OutboxMessage, appointment_id=theirs) > messages_before
    assert found[2].cancel_reason == "Away"


async def test_a_refused_cancellation_fails_none_of_the_others(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, cancellation_window_minutes=48 * 60)
    first, second, stranger = [await signed_in(client) for _ in range(3)]
    mine = await booked(client, first, provider, "09:00")
    theirs = await booked(client, second, provider, "10:00")
    open_window = await booked(client, second, provider, "10:00", day="2027-03-10")
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (stranger, theirs),  # another client's appointment: not found for them
                (first, uuid.uuid4()),  # no such appointment
                (first, mine),  # inside the provider's 48-hour window (DAY is 45 hours on)
                (second, open_window),  # outside it: cancelled
                (second, open_window),  # the same, again: already cancelled
                (stranger, asked(provider, "11:00")),
            ],
        )
    assert [outcome(answer) for answer in found] == [
        "appointment_not_found",
        "appointment_not_found",
        "policy_window_closed",
        "cancelled",
        "invalid_transition",
        "booked",
    ]
    assert commits.count == 1
    assert await status_of(app, theirs) is Status.PENDING
    assert await status_of(app, mine) is Status.PENDING
    assert await count_rows(app, AppointmentEvent, appointment_id=open_window) == 2


async def test_a_cancellation_frees_its_time_for_a_booking_of_its_batch(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The batch writes its cancellations before its bookings: a booking of the time one of
    them frees is booked, even queued before it, as if the cancellation had come first."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    mine = await booked(client, first, provider, "10:00")
    with Commits(app) as commits:
        found = await together(app, [(second, asked(provider, "10:00")), (first, mine)])
    assert [outcome(answer) for answer in found] == ["booked", "cancelled"]
    assert commits.count == 1
    assert await count_rows(app, Appointment, provider_id=uuid.UUID(provider["id"])) == 2


async def test_a_time_just_taken_and_freed_by_its_batch_is_probed_then_booked(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue's last write took 10:00, so the booking of it goes to the write as a probe
    (``write.probe``); the cancellation of its batch freed it, so the probe finds it clear,
    and the booking is written whole at the batch's next write, ahead of the one that waited
    on it, which is refused."""
    _, provider = await bookable_provider(client)
    first, second, third = [await signed_in(client) for _ in range(3)]
    mine = await booked(client, first, provider, "10:00")
    takes = Takes(monkeypatch)
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (second, asked(provider, "10:00")),
                (third, asked(provider, "10:00")),
                (first, mine),
            ],
        )
    assert [outcome(answer) for answer in found] == ["booked", "slot_unavailable", "cancelled"]
    assert takes.probes == [[True], [False]]
    assert commits.count == 1
    assert await count_rows(app, Appointment, provider_id=uuid.UUID(provider["id"])) == 2


@pytest.mark.parametrize("seed", range(4))
async def test_the_queues_memory_of_taken_times_changes_no_answer(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """The same batches of bookings and cancellations, run on one day with the queue's
    memory of taken times (probes) and on another without it: every answer, and who holds
    each time at the end, are the same."""
    rng = random.Random(seed)
    _, provider = await bookable_provider(client)
    accounts = [await signed_in(client) for _ in range(4)]
    ids = [
        uuid.UUID((await client.get("/auth/me", headers=a.headers)).json()["id"]) for a in accounts
    ]
    times = ["10:00", "11:00", "12:00"]
    steps: list[list[tuple[str, int, str]]] = [
        [("book", i, at) for i, at in enumerate(times)]  # every time taken: probes follow
    ]
    for _ in range(5):
        steps.append(
            [
                (rng.choice(["book", "book", "cancel"]), rng.randrange(4), rng.choice(times))
                for _ in range(rng.randint(3, 6))
            ]
        )

    async def run(day: str) -> tuple[list[list[str]], dict[str, int]]:
        held: dict[tuple[int, str], uuid.UUID] = {}
        answers: list[list[str]] = []
        for step in steps:
            jobs: list[Job] = []
            asked_for: list[tuple[str, int, str]] = []
            for kind, who, at in step:
                if kind == "cancel" and (who, at) not in held:
                    continue
                data = AppointmentCreate.model_validate(
                    {"provider_id": provider["id"], "start_datetime": f"{day}T{at}:00Z"}
                )
                jobs.append((accounts[who], held[who, at] if kind == "cancel" else data))
                asked_for.append((kind, who, at))
            found = await together(app, jobs)
            for (kind, who, at), answer in zip(asked_for, found, strict=True):
                if kind == "book" and isinstance(answer, Booked):
                    held[who, at] = answer.appointment.id
                elif kind == "cancel" and outcome(answer) == "cancelled":
                    del held[who, at]
            answers.append([outcome(answer) for answer in found])
        async with state_of(app).db.transaction(writes=False) as session:
            rows = await session.execute(
                select(Appointment.start_at, Appointment.client_id).where(
                    Appointment.provider_id == uuid.UUID(provider["id"]),
                    Appointment.status == Status.CONFIRMED,
                    Appointment.start_at >= datetime.fromisoformat(f"{day}T00:00:00+00:00"),
                    Appointment.start_at < datetime.fromisoformat(f"{day}T23:59:00+00:00"),
                )
            )
            holders = {start.strftime("%H:%M"): ids.index(whose) for start, whose in rows}
        return answers, holders

    takes = Takes(monkeypatch)
    with_memory = await run(DAY)
    assert any(True in probes for probes in takes.probes)  # the memory was put to use
    monkeypatch.setattr(queue, "_taken_by", lambda _rows, _outcomes: set())
    without = await run("2027-03-04")
    assert with_memory == without


async def test_a_batch_refused_as_a_whole_writes_its_cancellations_alone_too(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch the database refuses as a whole (here a foreign key: a booking's row names
    no user) is written again job by job, its cancellations with its bookings: none is lost,
    none written twice."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    mine = await booked(client, first, provider, "09:00")
    break_first_booking(monkeypatch)
    with Commits(app) as commits:
        found = await together(app, [(first, mine), (second, asked(provider, "10:00"))])
    assert [outcome(answer) for answer in found] == ["cancelled", "booked"]
    assert commits.count == 2  # nothing of the batch; each job in a batch of its own
    assert await status_of(app, mine) is Status.CANCELLED
    assert await count_rows(app, AppointmentEvent, appointment_id=mine) == 2


async def test_cancellations_arriving_together_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Each alias of the cancellation goes through the queue: requests arriving together
    share transactions, each answered as alone."""
    owner, provider = await bookable_provider(client)
    clients = [await signed_in(client) for _ in range(3)]
    ids = [await booked(client, one, provider, f"{9 + i:02d}:00") for i, one in enumerate(clients)]
    clock.now = BOOKING_NOW + timedelta(minutes=1)
    state_of(app).bookings.writers = 1  # two would share them
    with Commits(app) as commits:
        responses = await asyncio.gather(
            client.post(
                f"/appointments/{ids[0]}/cancel", headers=clients[0].headers, json={"reason": "Ill"}
            ),
            client.delete(f"/appointments/{ids[1]}?reason=Away", headers=clients[1].headers),
            client.patch(
                f"/appointments/{ids[2]}/status",
                headers=owner.headers,
                json={"status": "cancelled", "reason": "Closed"},
            ),
            client.post(f"/appointments/{ids[0]}/cancel", headers=clients[1].headers),
            client.post(f"/appointments/{ids[0]}/cancel"),  # nobody signed in
        )
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 401], [
        r.text for r in responses
    ]
    assert [r.json()["cancel_reason"] for r in responses[:3]] == ["Ill", "Away", "Closed"]
    assert all(r.json()["status"] == "cancelled" for r in responses[:3])
    assert commits.count < 3  # one transaction per cancellation would be 3


async def test_a_batchs_cancellations_hand_their_times_on_together(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The times a batch's cancellations free go to their waiters in one hand-on per
    provider, after the cancellations are written: each waiter booked, each change heard by
    the provider's webhook, and the waitlist, the webhook subscriptions and the provider's
    lock each asked once for the whole batch."""
    owner, provider = await bookable_provider(client)
    await hooked(client, owner, "booking.cancelled", "booking.created")
    first, second = await signed_in(client), await signed_in(client)
    times = ("09:00", "10:00")
    ids = [
        await booked(client, one, provider, at)
        for one, at in zip((first, second), times, strict=True)
    ]
    waiters = [await signed_in(client) for _ in times]
    entries = [
        await waiting(client, waiter, provider, at)
        for waiter, at in zip(waiters, times, strict=True)
    ]
    with statements_of(app) as seen:
        found = await together(app, [(first, ids[0]), (second, ids[1])])
    assert [outcome(answer) for answer in found] == ["cancelled", "cancelled"]
    for waiter, entry_id, at in zip(waiters, entries, times, strict=True):
        got = (await client.get(f"/waitlist/{entry_id}", headers=waiter.headers)).json()
        assert got["status"] == "booked", got
        mine = await client.get(f"/appointments/{got['appointment_id']}", headers=waiter.headers)
        assert mine.json()["start_at"] == f"{DAY}T{at}:00Z"
    assert await count_rows(app, WebhookDelivery, event_type="booking.cancelled") == 2
    # Two booked before, two for the waiters.
    assert await count_rows(app, WebhookDelivery, event_type="booking.created") == 4
    asked = Counter(
        kind
        for statement in seen
        for kind, opening in ASKED_ONCE.items()
        if statement.startswith(opening)
    )
    if state_of(app).db.engine.dialect.name == "postgresql":
        # Both cancellations are one write (``change.write_each``), and who subscribes
        # travels with it.
        assert asked == {"waitlist": 1, "lock": 1}
        writes = [s for s in seen if s.startswith(CHANGE_WRITE)]
        assert ["array_agg(DISTINCT" in write for write in writes] == [True]
    else:
        assert asked == {"webhooks": 1, "waitlist": 1}


async def test_a_batchs_cancellations_are_written_together_each_row_its_own(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A batch's cancellations are written together (``change.write_each``: on
    PostgreSQL one statement): each appointment gets its own reason, sequence and history
    row, its reminders withdrawn and its messages queued; one the batch does not cancel
    keeps its reminders."""
    _, provider = await bookable_provider(
        client, requires_confirmation=False, cancellation_window_minutes=0
    )
    clients = [await signed_in(client) for _ in range(4)]
    times = ("09:00", "10:00", "11:00", "12:00")
    ids = [await booked(client, one, provider, at) for one, at in zip(clients, times, strict=True)]
    reminders = {
        appointment_id: await count_rows(
            app, OutboxMessage, appointment_id=appointment_id, kind=outbox.REMINDER
        )
        for appointment_id in ids
    }
    assert all(reminders.values()), reminders
    writer = state_of(app).bookings
    writer.writers = 1
    reasons = ["Ill", "Away", None]
    with statements_of(app) as seen:
        found = await asyncio.gather(
            *(
                writer.cancel(
                    claims=claims_of(app, one), appointment_id=aid, reason=reason, now=BOOKING_NOW
                )
                for one, aid, reason in zip(clients, ids, reasons, strict=False)
            )
        )
        await writer.aclose()
    assert [outcome(answer) for answer in found] == ["cancelled"] * 3
    async with state_of(app).db.transaction(writes=False) as session:
        stored = {
            row.id: row
            for row in (
                await session.execute(
                    select(
                        Appointment.id,
                        Appointment.status,
                        Appointment.cancel_reason,
                        Appointment.sequence,
                        Appointment.updated_at,
                    ).where(Appointment.id.in_(ids))
                )
            ).all()
        }
    for answer, reason in zip(found, reasons, strict=True):
        row = stored[answer.id]
        assert (row.status, row.cancel_reason) == (Status.CANCELLED, reason)
        assert (row.sequence, row.updated_at) == (answer.sequence, answer.updated_at)
        assert await count_rows(app, AppointmentEvent, appointment_id=answer.id) == 2
        cancelled = await count_rows(
            app, OutboxMessage, appointment_id=answer.id, kind="booking_cancelled"
        )
        assert cancelled == 2  # the client's and the provider's
        withdrawn = await count_rows(
            app,
            OutboxMessage,
            appointment_id=answer.id,
            kind=outbox.REMINDER,
            status=OutboxStatus.CANCELLED,
        )
        assert withdrawn == reminders[answer.id]
    kept = ids[3]
    assert stored[kept].status is Status.CONFIRMED
    pending = await count_rows(
        app, OutboxMessage, appointment_id=kept, kind=outbox.REMINDER, status=OutboxStatus.PENDING
    )
    assert pending == reminders[kept]
    if state_of(app).db.engine.dialect.name == "postgresql":
        assert len([s for s in seen if s.startswith(CHANGE_WRITE)]) == 1, seen
    else:  # one statement a table, executed for each row
        for opening in ("UPDATE appointments SET", "INSERT INTO appointment_events"):
            assert len([s for s in seen if s.startswith(opening)]) == 1, seen
        withdrawals = [s for s in seen if s.startswith("UPDATE outbox_messages SET")]
        assert len(withdrawals) == 1, seen


async def test_a_batch_asks_once_for_all_its_providers(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Cancellations of several providers' appointments in one batch: who subscribes to
    their webhook events, and who waits for the times they free, are one question each for
    all of them. Each provider's hook still hears of its own cancellation, and only of it,
    and each freed time goes to its own provider's first in line."""
    booked_ids, hooks, waiters = [], [], []
    for _ in range(3):
        owner, provider = await bookable_provider(client)
        hooks.append(await hooked(client, owner, "booking.cancelled"))
        someone = await signed_in(client)
        booked_ids.append((someone, await booked(client, someone, provider, "09:00")))
        waiter = await signed_in(client)
        waiters.append((waiter, provider, await waiting(client, waiter, provider, "09:00")))
    with statements_of(app) as seen:
        found = await together(app, booked_ids)
    assert [outcome(answer) for answer in found] == ["cancelled"] * 3
    asked = Counter(
        kind
        for statement in seen
        for kind, opening in ASKED_ONCE.items()
        if statement.startswith(opening) and kind != "lock"
    )
    assert asked == {"webhooks": 1, "waitlist": 1}
    for waiter, provider, entry_id in waiters:
        got = (await client.get(f"/waitlist/{entry_id}", headers=waiter.headers)).json()
        assert got["status"] == "booked", got
        mine = await client.get(f"/appointments/{got['appointment_id']}", headers=waiter.headers)
        assert mine.json()["provider_id"] == provider["id"]
        assert mine.json()["start_at"] == f"{DAY}T09:00:00Z"
    async with state_of(app).db.transaction(writes=False) as session:
        heard = Counter(
            await session.scalars(
                select(WebhookDelivery.subscription_id).where(
                    WebhookDelivery.event_type == "booking.cancelled"
                )
            )
        )
    assert heard == dict.fromkeys(hooks, 1)


async def test_each_time_a_batch_frees_is_tried_for_its_own_first_waiters(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handed on together, each freed time still tries the first ``MAX_TRIED`` of its own
    line: a long line for one time does not use up the tries of another's."""
    monkeypatch.setattr(waitlist, "MAX_TRIED", 2)
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    ids = [await booked(client, first, provider, "09:00")]
    ids.append(await booked(client, second, provider, "10:00"))
    waiters = [await signed_in(client) for _ in range(3)]
    entries = [
        await waiting(client, waiter, provider, at)
        for waiter, at in zip(waiters, ("09:00", "09:00", "10:00"), strict=True)
    ]
    found = await together(app, [(first, ids[0]), (second, ids[1])])
    assert [outcome(answer) for answer in found] == ["cancelled", "cancelled"]
    statuses = [
        (await client.get(f"/waitlist/{entry_id}", headers=waiter.headers)).json()["status"]
        for waiter, entry_id in zip(waiters, entries, strict=True)
    ]
    assert statuses == ["booked", "waiting", "booked"]


async def waiting(client: httpx.AsyncClient, waiter: Account, provider: Any, at: str) -> str:
    """The waiter in the provider's line for ``at`` on DAY, to be booked when it frees."""
    joined = await client.post(
        "/waitlist",
        headers=waiter.headers,
        json={"provider_id": provider["id"], "start_datetime": f"{DAY}T{at}:00Z", "mode": "book"},
    )
    assert joined.status_code == 201, joined.text
    entry_id: str = joined.json()["id"]
    return entry_id


# PostgreSQL: a change's one write (``change.write``), its history row first.
CHANGE_WRITE = "WITH history AS (INSERT INTO appointment_events"

# What a batch asks once however many of one provider's appointments it cancels.
ASKED_ONCE = {
    "webhooks": "SELECT DISTINCT webhook_subscriptions.provider_id",
    "waitlist": "SELECT waitlist_entries.id",
    "lock": "SELECT count(pg_advisory_xact_lock(",  # the provider's lock, for the hand-on
}


async def test_an_entry_served_before_its_providers_hand_over_is_left_alone(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """``promote`` reads every provider's line before the first hand-over: an entry an
    earlier hand-over of the transaction served meanwhile is given nothing more."""
    _, provider = await bookable_provider(client)
    someone, waiter = await signed_in(client), await signed_in(client)
    appointment_id = await booked(client, someone, provider, "10:00")
    entry_id = uuid.UUID(await waiting(client, waiter, provider, "10:00"))
    provider_id = uuid.UUID(provider["id"])
    async with state_of(app).db.transaction(writes=True) as session:
        row = await session.get(Appointment, appointment_id)
        assert row is not None
        span = Interval(row.blocked_start_at, row.blocked_end_at)
        await session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id)
            .values(status=Status.CANCELLED)
        )
        line = await waitlist_repository.waiting_for(session, {provider_id: [span]}, limit=5)
        assert [entry.id for entry in line[provider_id]] == [entry_id]
        line[provider_id][0].status = WaitlistStatus.BOOKED.value  # served meanwhile
        await waitlist._hand_on(session, provider_id, [span], now=BOOKING_NOW, waiting=line)
        theirs = await session.scalars(
            select(Appointment.id).where(Appointment.client_id == uuid.UUID(waiter.id))
        )
        assert list(theirs) == []
        await session.rollback()


async def test_a_batch_asks_who_waits_only_where_a_read_under_its_locks_found_someone(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Nobody joins a provider's line while a transaction holds the provider's lock (on
    SQLite, the write lock), so a statement after it can say whether anyone is in line: on
    SQLite the one that reads and locks the changes, on PostgreSQL the cancellations' write
    (the batch took both providers' locks first, for its two steps). A time freed where
    nobody waits goes to nobody without asking; the waiter gets theirs."""
    booked_ids = []
    for _ in range(2):
        _, provider = await bookable_provider(client)
        someone = await signed_in(client)
        booked_ids.append((someone, await booked(client, someone, provider, "09:00")))
    waiter = await signed_in(client)
    entry_id = await waiting(client, waiter, provider, "09:00")  # in the second's line only
    with statements_of(app) as seen:
        found = await together(app, booked_ids)
    assert [outcome(answer) for answer in found] == ["cancelled"] * 2
    got = (await client.get(f"/waitlist/{entry_id}", headers=waiter.headers)).json()
    assert got["status"] == "booked", got
    mine = await client.get(f"/appointments/{got['appointment_id']}", headers=waiter.headers)
    assert mine.json()["provider_id"] == provider["id"]
    asked = [s for s in seen if s.startswith(ASKED_ONCE["waitlist"])]
    assert len(asked) == 1
    # One (provider, span) pair is one subquery; two would be joined by UNION ALL.
    assert "UNION ALL" not in asked[0]


@pytest.mark.parametrize("in_line", [False, True], ids=["nobody_waits", "someone_waits"])
async def test_a_batch_of_a_booking_and_a_cancellation_asks_who_waits_only_if_anyone_does(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, in_line: bool
) -> None:
    """A batch that books and cancels takes every lock first (its two steps), so on
    PostgreSQL the cancellation's own write says whether anyone is in the provider's line:
    nobody, and the freed time is offered to nobody without a look at the line; someone,
    and they get it."""
    _, provider = await bookable_provider(client)
    owner, other = await signed_in(client), await signed_in(client)
    cancelled = await booked(client, owner, provider, "09:00")
    entry_id = None
    if in_line:
        entry_id = await waiting(client, await signed_in(client), provider, "09:00")
    with statements_of(app) as seen:
        found = await together(app, [(owner, cancelled), (other, asked(provider, "11:00"))])
    assert [outcome(answer) for answer in found] == ["cancelled", "booked"]
    asked_lines = [s for s in seen if s.startswith(ASKED_ONCE["waitlist"])]
    assert len(asked_lines) == (1 if in_line else 0)
    if entry_id is not None:
        async with state_of(app).db.transaction(writes=False) as session:
            entry = await session.get(WaitlistEntry, uuid.UUID(entry_id))
        assert entry is not None
        assert entry.status == WaitlistStatus.BOOKED.value


async def test_a_batch_that_frees_times_nobody_waits_for_asks_nobody_on_sqlite(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """No line at all: on SQLite the batch does not ask who waits; on PostgreSQL it asks
    once, under the provider's lock."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    ids = [await booked(client, first, provider, "09:00")]
    ids.append(await booked(client, second, provider, "10:00"))
    with statements_of(app) as seen:
        found = await together(app, [(first, ids[0]), (second, ids[1])])
    assert [outcome(answer) for answer in found] == ["cancelled", "cancelled"]
    asked = [s for s in seen if s.startswith(ASKED_ONCE["waitlist"])]
    on_postgresql = state_of(app).db.engine.dialect.name == "postgresql"
    assert len(asked) == (1 if on_postgresql else 0)


@pytest.mark.parametrize("with_booking", [False, True])
async def test_a_batch_cancels_an_unverified_booking_whose_hold_lapsed_once(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, with_booking: bool
) -> None:
    """The provider cancels a guest's unverified booking whose hold has lapsed (nothing has
    released it yet), alone or in a batch that also books, whose writes release the
    providers' expired holds: the provider's cancellation is the one the row gets, once,
    as a lone one would be (the release leaves a row the batch changes to the change)."""
    owner, provider = await bookable_provider(client, verify_guest_email=True)
    clock.now = BOOKING_NOW - timedelta(minutes=30)  # held for 15 minutes: lapsed by then
    held = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert held.json()["status"] == "pending_verification", held.text
    clock.now = BOOKING_NOW
    held_id = uuid.UUID(held.json()["id"])
    jobs: list[Job] = [(owner, held_id)]
    if with_booking:
        jobs.append((await signed_in(client), asked(provider, "11:00")))
    found = await together(app, jobs)
    assert [outcome(answer) for answer in found] == ["cancelled"] + ["booked"] * with_booking
    async with state_of(app).db.transaction(writes=False) as session:
        row = await session.get(Appointment, held_id)
        history = (
            await session.scalars(
                select(AppointmentEvent)
                .where(AppointmentEvent.appointment_id == held_id)
                .order_by(AppointmentEvent.at, AppointmentEvent.id)
            )
        ).all()
    assert row is not None
    assert row.status is Status.CANCELLED
    assert row.cancel_reason == "Away"
    cancellations = [event for event in history if event.to_status == Status.CANCELLED.value]
    assert [(event.actor_role, event.reason) for event in cancellations] == [("provider", "Away")]

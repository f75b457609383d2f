"""Reschedules through the booking queue: a signed-in caller's reschedule is a job of the
same batches as bookings and cancellations, decided and written in their transaction (after
the cancellations, before the bookings), each answered on its own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select

from slotwise.booking import queue, reschedule, waitlist
from slotwise.booking.errors import SlotUnavailable
from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.booking.schemas import AppointmentCreate, AppointmentRead, RescheduleRequest
from slotwise.booking.waitlist_schemas import WaitlistCreate
from slotwise.users.models import User
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_change import statements_of
from tests.booking.test_holds import hold
from tests.booking.test_queue import DAY, Commits, asked, claims_of, state_of
from tests.booking.test_queue_cancel import ASKED_ONCE, booked, break_first_booking, hooked
from tests.booking.test_queue_cancel import outcome as cancel_outcome
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    signed_in,
)

# A reschedule: the appointment's id and its new start ("HH:MM" on DAY).
Moving = tuple[uuid.UUID, str]
Job = tuple[Account, AppointmentCreate | uuid.UUID | Moving]


async def together(
    app: FastAPI, jobs: list[Job], clocks: list[datetime] | None = None
) -> list[Any]:
    """Bookings (a body), cancellations (an appointment's id) and reschedules (an id and a
    time) handed to the worker's one writer at once: they reach it as one batch. Each job
    is asked at its clock (``clocks``, by default BOOKING_NOW for all)."""
    writer = state_of(app).bookings
    writer.writers = 1

    def submitted(
        account: Account, job: AppointmentCreate | uuid.UUID | Moving, now: datetime
    ) -> Any:
        claims = claims_of(app, account)
        if isinstance(job, uuid.UUID):
            return writer.cancel(claims=claims, appointment_id=job, reason=None, now=now)
        if isinstance(job, tuple):
            appointment_id, at = job
            return writer.move(
                claims=claims,
                appointment_id=appointment_id,
                data=RescheduleRequest.model_validate(
                    {"new_start_time": f"{DAY}T{at}:00Z", "reason": "Clash"}
                ),
                reminder_offsets=[60],
                now=now,
            )
        return writer.submit(claims=claims, data=job, now=now)

    at = clocks or [BOOKING_NOW] * len(jobs)
    found = await asyncio.gather(
        *(submitted(account, job, now) for (account, job), now in zip(jobs, at, strict=True)),
        return_exceptions=True,
    )
    await writer.aclose()  # every batch committed (a refusal is answered before its commit)
    return found


async def start_of(app: FastAPI, appointment_id: uuid.UUID) -> datetime:
    async with state_of(app).db.transaction(writes=False) as session:
        found = await session.scalar(
            select(Appointment.start_at).where(Appointment.id == appointment_id)
        )
    assert found is not None
    return found


def on_day(at: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{at}:00+00:00")


def outcome(answer: Any) -> str:
    """A reschedule's answer (the appointment as the API shows it) by its status; a
    booking's, a cancellation's or a refusal's as ``test_queue_cancel`` names them."""
    if isinstance(answer, AppointmentRead):
        return answer.status.value
    return cancel_outcome(answer)


async def test_bookings_cancellations_and_reschedules_arriving_together_share_a_commit(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The batch cancels, then moves, then books: a booking of the time a reschedule frees
    is booked, one of the time it takes is refused, each answered as alone would be."""
    owner, provider = await bookable_provider(client)
    first, second, third, fourth = [await signed_in(client) for _ in range(4)]
    mine = await booked(client, first, provider, "09:00")
    theirs = await booked(client, second, provider, "10:00")
    gone = await booked(client, third, provider, "13:00")
    events_before = await count_rows(app, AppointmentEvent, appointment_id=mine)
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (fourth, asked(provider, "09:00")),  # the time ``mine`` leaves: booked
                (fourth, asked(provider, "11:00")),  # the time ``mine`` takes: refused
                (first, (mine, "11:00")),  # a client moves their own
                (owner, (theirs, "13:00")),  # the provider moves a client's, to a freed time
                (third, gone),
            ],
        )
    assert [outcome(answer) for answer in found] == [
        "booked",
        "slot_unavailable",
        "pending",
        "pending",
        "cancelled",
    ]
    assert commits.count == 1
    assert await start_of(app, mine) == on_day("11:00")
    assert await start_of(app, theirs) == on_day("13:00")
    assert await count_rows(app, AppointmentEvent, appointment_id=mine) == events_before + 1
    assert found[2].start_at == on_day("11:00")
    assert [event.action for event in found[2].history][-1] == "rescheduled"


async def test_a_later_reschedule_of_the_batch_sees_the_earlier_ones_change(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Each reschedule of a batch is decided and written in turn: one into the time an
    earlier one left is moved; one into the time an earlier one took is refused."""
    _, provider = await bookable_provider(client)
    first, second, third = [await signed_in(client) for _ in range(3)]
    at_nine = await booked(client, first, provider, "09:00")
    at_ten = await booked(client, second, provider, "10:00")
    at_two = await booked(client, third, provider, "14:00")
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (first, (at_nine, "11:00")),
                (second, (at_ten, "09:00")),  # where the first was
                (third, (at_two, "11:00")),  # where the first went
            ],
        )
    assert [outcome(answer) for answer in found] == ["pending", "pending", "slot_unavailable"]
    assert commits.count == 1
    assert await start_of(app, at_nine) == on_day("11:00")
    assert await start_of(app, at_ten) == on_day("09:00")
    assert await start_of(app, at_two) == on_day("14:00")


async def test_a_refused_reschedule_writes_nothing_and_fails_none_of_the_others(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, cancellation_window_minutes=48 * 60)
    first, second, stranger = [await signed_in(client) for _ in range(3)]
    mine = await booked(client, first, provider, "09:00")  # inside the 48-hour window
    open_window = await booked(client, second, provider, "10:00", day="2027-03-10")
    called_off = await booked(client, second, provider, "12:00", day="2027-03-10")
    assert (
        await client.post(f"/appointments/{called_off}/cancel", headers=second.headers)
    ).is_success
    events_before = {
        one: await count_rows(app, AppointmentEvent, appointment_id=one)
        for one in (mine, open_window, called_off)
    }
    with Commits(app) as commits:
        found = await together(
            app,
            [
                (stranger, (open_window, "11:00")),  # another client's: not found for them
                (first, (uuid.uuid4(), "11:00")),  # no such appointment
                (first, (mine, "11:00")),  # inside the provider's window
                (second, (called_off, "11:00")),  # cancelled: it moves nowhere
                (second, (open_window, "05:00")),  # a time the provider does not offer
                (stranger, asked(provider, "11:00")),
            ],
        )
    assert [outcome(answer) for answer in found] == [
        "appointment_not_found",
        "appointment_not_found",
        "policy_window_closed",
        "invalid_transition",
        "outside_availability",
        "booked",
    ]
    assert commits.count == 1
    for one, before in events_before.items():
        assert await count_rows(app, AppointmentEvent, appointment_id=one) == before
    assert await start_of(app, mine) == on_day("09:00")
    assert await start_of(app, open_window) == datetime.fromisoformat("2027-03-10T10:00:00+00:00")


async def test_a_batch_refused_as_a_whole_writes_its_reschedules_alone_too(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch the database refuses as a whole (a booking's row names no user) is written
    again job by job, its reschedules with its bookings: none lost, none written twice."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    mine = await booked(client, first, provider, "09:00")
    events_before = await count_rows(app, AppointmentEvent, appointment_id=mine)
    break_first_booking(monkeypatch)
    with Commits(app) as commits:
        found = await together(app, [(first, (mine, "11:00")), (second, asked(provider, "10:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "booked"]
    assert commits.count == 2  # nothing of the batch; each job in a batch of its own
    assert await start_of(app, mine) == on_day("11:00")
    assert await count_rows(app, AppointmentEvent, appointment_id=mine) == events_before + 1


async def test_a_write_that_fails_after_planning_gives_up_the_whole_batch(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``carry_out`` raises is not a refusal of the reschedule alone: part of it may be
    written. The batch is given up and every job written alone, so nothing half-written
    is committed: here the first write fails, the second (alone) succeeds."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    mine = await booked(client, first, provider, "09:00")
    real = reschedule.carry_out
    failed: list[bool] = []

    async def failing_once(session: Any, planned: Any, **given: Any) -> Appointment:
        moved = await real(session, planned, **given)
        if not failed:
            failed.append(True)
            raise SlotUnavailable()
        return moved

    monkeypatch.setattr(reschedule, "carry_out", failing_once)
    with Commits(app) as commits:
        found = await together(app, [(first, (mine, "11:00")), (second, asked(provider, "12:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "booked"]
    assert commits.count == 2
    assert await start_of(app, mine) == on_day("11:00")
    assert await count_rows(app, AppointmentEvent, appointment_id=mine) == 2


async def test_reschedules_arriving_together_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """POST /appointments/{id}/reschedule goes through the queue: requests arriving together
    share transactions, each answered as alone (401, 404 and 409 too)."""
    _, provider = await bookable_provider(client)
    clients = [await signed_in(client) for _ in range(3)]
    ids = [await booked(client, one, provider, f"{9 + i:02d}:00") for i, one in enumerate(clients)]
    clock.now = BOOKING_NOW + timedelta(minutes=1)
    state_of(app).bookings.writers = 1  # two would share them

    def moved(index: int, at: str, account: Account | None) -> Any:
        return client.post(
            f"/appointments/{ids[index]}/reschedule",
            headers=account.headers if account else {},
            json={"new_start_time": f"{DAY}T{at}:00Z"},
        )

    with Commits(app) as commits:
        responses = await asyncio.gather(
            moved(0, "13:00", clients[0]),
            moved(1, "14:00", clients[1]),
            moved(2, "13:00", clients[2]),  # the time the first takes
            moved(0, "15:00", clients[1]),  # another client's
            moved(0, "15:00", None),  # nobody signed in
        )
    statuses = [r.status_code for r in responses]
    # The first and the third both ask for 13:00: the one the queue reaches first gets it
    # (gather does not promise the order the requests reach it in).
    first, third = responses[0], responses[2]
    winner, loser = (first, third) if first.status_code == 200 else (third, first)
    assert [statuses[1], *statuses[3:]] == [200, 404, 401], [r.text for r in responses]
    assert (winner.status_code, loser.status_code) == (200, 409), [r.text for r in responses]
    assert winner.json()["start_at"].startswith(f"{DAY}T13:00:00")
    assert loser.json()["code"] == "slot_unavailable"
    assert commits.count < 3  # one transaction per reschedule would be 3


async def test_each_reschedule_of_one_appointment_is_answered_as_it_moved_it(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The same appointment moved twice in one batch: each caller hears of their own move
    (the answer is taken when it is made), the row ends where the second put it."""
    owner, provider = await bookable_provider(client)
    mine = await signed_in(client)
    moved = await booked(client, mine, provider, "09:00")
    with Commits(app) as commits:
        first, second = await together(app, [(mine, (moved, "11:00")), (owner, (moved, "13:00"))])
    assert commits.count == 1
    assert first.start_at == on_day("11:00")
    assert [event.action for event in first.history].count("rescheduled") == 1
    assert second.start_at == on_day("13:00")
    assert [event.action for event in second.history].count("rescheduled") == 2
    assert await start_of(app, moved) == on_day("13:00")


async def test_a_booking_refused_for_a_change_of_its_batch_is_answered_after_the_commit(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A booking of the time a reschedule of its batch takes is refused by the write; the
    refusal waits for the commit that makes it true (were the batch given up, the booking
    would be decided again, alone)."""
    _, provider = await bookable_provider(client)
    first, second = await signed_in(client), await signed_in(client)
    mine = await booked(client, first, provider, "09:00")
    order: list[str] = []
    real = queue._refuse

    def refusing(job: Any, exc: BaseException) -> None:
        order.append(f"refused {getattr(exc, 'code', exc)}")
        real(job, exc)

    monkeypatch.setattr(queue, "_refuse", refusing)
    engine = state_of(app).db.engine.sync_engine
    committed = lambda _connection: order.append("commit")  # noqa: E731
    event.listen(engine, "commit", committed)
    try:
        found = await together(app, [(first, (mine, "11:00")), (second, asked(provider, "11:00"))])
    finally:
        event.remove(engine, "commit", committed)
    assert [outcome(answer) for answer in found] == ["pending", "slot_unavailable"]
    assert order == ["commit", "refused slot_unavailable"]


async def test_a_batch_asks_once_who_subscribes_to_the_providers_it_changes(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Reschedules and a cancellation of three providers' appointments in one batch: who
    subscribes to their webhook events is one question for all of them, and each provider's
    hook hears of its own change, and only of it."""
    jobs: list[Job] = []
    hooks = []
    for number in range(3):
        owner, provider = await bookable_provider(client)
        hooks.append(await hooked(client, owner, "booking.rescheduled", "booking.cancelled"))
        someone = await signed_in(client)
        appointment_id = await booked(client, someone, provider, "09:00")
        jobs.append((someone, appointment_id if number == 0 else (appointment_id, "11:00")))
    with statements_of(app) as seen:
        found = await together(app, jobs)
    assert outcome(found[0]) == "cancelled"
    assert [isinstance(answer, AppointmentRead) for answer in found[1:]] == [True, True]
    assert [answer.start_at for answer in found[1:]] == [on_day("11:00")] * 2
    questions = [s for s in seen if s.startswith(ASKED_ONCE["webhooks"])]
    assert len(questions) == 1
    async with state_of(app).db.transaction(writes=False) as session:
        heard = list(
            await session.execute(
                select(WebhookDelivery.subscription_id, WebhookDelivery.event_type)
            )
        )
    assert sorted(heard) == sorted(
        [
            (hooks[0], "booking.cancelled"),
            (hooks[1], "booking.rescheduled"),
            (hooks[2], "booking.rescheduled"),
        ]
    )


async def test_a_reschedule_asks_who_waits_for_its_old_time_only_if_its_provider_has_a_line(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A move's judgment, under its provider's lock, also says whether anyone is in the
    provider's line (on SQLite the read that locks the batch's changes already has): nobody
    joins one until the commit, so a move whose provider has nobody waiting hands its old
    time to nobody without asking, and one whose provider has a waiter for the old time
    gives it to them."""
    _, quiet = await bookable_provider(client)
    _, busy = await bookable_provider(client)
    mover, other = await signed_in(client), await signed_in(client)
    moved_quiet = await booked(client, mover, quiet, "09:00")
    moved_busy = await booked(client, other, busy, "09:00")
    waiter = await signed_in(client)
    joined = await client.post(
        "/waitlist",
        headers=waiter.headers,
        json={"provider_id": busy["id"], "start_datetime": f"{DAY}T09:00:00Z", "mode": "book"},
    )
    assert joined.status_code == 201, joined.text
    with statements_of(app) as seen:
        found = await together(
            app, [(mover, (moved_quiet, "11:00")), (other, (moved_busy, "11:00"))]
        )
    assert [answer.start_at for answer in found] == [on_day("11:00")] * 2
    got = (await client.get(f"/waitlist/{joined.json()['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked", got
    asked = [s for s in seen if s.startswith(ASKED_ONCE["waitlist"])]
    assert len(asked) == 1


async def test_someone_joining_the_line_while_a_move_waits_for_the_lock_gets_the_old_time(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A waiter joins the old time's line, and holds the provider's lock (SQLite: the write
    lock) while the move's batch waits for it. The move looks at the line only once it
    holds the lock, so it sees the waiter, who is given the time it frees."""
    _, provider = await bookable_provider(client)
    mover, waiter = await signed_in(client), await signed_in(client)
    moving = await booked(client, mover, provider, "09:00")
    state = state_of(app)
    asked = WaitlistCreate.model_validate(
        {"provider_id": provider["id"], "start_datetime": f"{DAY}T09:00:00Z", "mode": "book"}
    )
    async with state.db.transaction(writes=True) as session:
        joined = await waitlist.join(
            session,
            kept_terms=state.terms,
            user=await session.get(User, uuid.UUID(waiter.id)),
            data=asked,
            now=BOOKING_NOW,
            policy=waitlist.WaitlistPolicy.from_settings(state.settings),
        )
        moved = asyncio.create_task(together(app, [(mover, (moving, "11:00"))]))
        await asyncio.sleep(0.3)
        assert not moved.done()  # waiting for the lock the join holds
    (answer,) = await moved
    assert answer.start_at == on_day("11:00")
    got = (await client.get(f"/waitlist/{joined.entry.id}", headers=waiter.headers)).json()
    assert got["status"] == "booked", got


# The release of expired holds, in every statement that makes one (the write's first step).
RELEASE = "appointments.hold_until <="


async def test_a_batch_that_moves_and_books_releases_expired_holds_once(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A batch that moves and books takes every lock it will need first; that step also
    releases the expired holds of every provider and client it locks, so neither the move's
    judgment nor the bookings' write asks again (on SQLite, whose write lock serializes
    writers, the release alone). The time an expired hold kept is booked in that batch,
    and a reschedule can take one too."""
    _, provider = await bookable_provider(client)
    mover, booker = await signed_in(client), await signed_in(client)
    moving = await booked(client, mover, provider, "09:00")
    clock.now = BOOKING_NOW - timedelta(minutes=30)  # holds for 10 minutes: lapsed by then
    for at in ("11:00", "12:00"):
        held = await hold(client, provider["id"], f"{DAY}T{at}:00Z")
        assert held.status_code == 201, held.text
    clock.now = BOOKING_NOW
    with statements_of(app) as seen:
        found = await together(
            app, [(mover, (moving, "11:00")), (booker, asked(provider, "12:00"))]
        )
    assert outcome(found[1]) == "booked"
    assert found[0].start_at == on_day("11:00")
    assert await start_of(app, moving) == on_day("11:00")
    assert len([s for s in seen if RELEASE in s]) == 1


# A move's judgment (the answers for every claim, in one statement), and its row's write
# (PostgreSQL: one statement with its history and messages; SQLite: one a table).
JUDGED = "SELECT (SELECT providers.rules_version"
MOVED = ("WITH history AS (INSERT INTO appointment_events", "UPDATE appointments SET start_at=")


async def test_reschedules_that_cannot_meet_are_judged_together_and_written_together(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Moves of a batch whose new times meet neither the times the others leave nor those
    they take are judged in one statement and written in one: what judging and writing each
    after the one before gives, in two round trips instead of two each."""
    _, provider = await bookable_provider(client)
    accounts = [await signed_in(client) for _ in range(3)]
    ids = [await booked(client, one, provider, f"{9 + i:02d}:00") for i, one in enumerate(accounts)]
    with statements_of(app) as seen, Commits(app) as commits:
        found = await together(
            app, [(one, (ids[i], f"{13 + i}:00")) for i, one in enumerate(accounts)]
        )
    assert commits.count == 1
    assert [answer.start_at for answer in found] == [on_day(f"{13 + i}:00") for i in range(3)]
    for i, answer in enumerate(found):
        assert await start_of(app, ids[i]) == on_day(f"{13 + i}:00")
        assert [event.action for event in answer.history] == ["created", "rescheduled"]
    assert len([s for s in seen if s.startswith(JUDGED)]) == 1
    assert len([s for s in seen if s.startswith(MOVED)]) == 1


async def test_moves_into_a_day_with_room_for_one_more_are_judged_in_turn(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """Two clients' moves into a day with room for one more booking: judged at once, each
    would find room; judged each after the one before, the second is refused the limit."""
    _, provider = await bookable_provider(client, max_bookings_per_day=2)
    first, second, third = [await signed_in(client) for _ in range(3)]
    await booked(client, first, provider, "09:00")  # one of DAY's two
    later = "2027-03-10"
    ids = [
        await booked(client, second, provider, "10:00", day=later),
        await booked(client, third, provider, "12:00", day=later),
    ]
    found = await together(app, [(second, (ids[0], "11:00")), (third, (ids[1], "13:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "limit_reached"]
    assert found[1].details == {"limit": "per_day", "maximum": 2}
    assert await start_of(app, ids[0]) == on_day("11:00")
    assert await start_of(app, ids[1]) == datetime.fromisoformat(f"{later}T12:00:00+00:00")


async def test_an_appointment_moved_twice_in_a_batch_is_judged_where_the_first_move_put_it(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The provider moves a client's appointment into the client's cancellation window and
    the client moves it again in the same batch: the second move is judged on the row as
    the first left it, so the client is refused, as the window says."""
    owner, provider = await bookable_provider(client, cancellation_window_minutes=48 * 60)
    mine = await signed_in(client)
    moving = await booked(client, mine, provider, "10:00", day="2027-03-10")
    found = await together(app, [(owner, (moving, "11:00")), (mine, (moving, "13:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "policy_window_closed"]
    assert await start_of(app, moving) == on_day("11:00")


async def test_an_appointment_moved_twice_in_a_batch_may_be_moved_where_the_first_leaves_it(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """The provider moves a client's appointment out of the client's cancellation window
    and the client moves it again in the same batch: the client's move is checked on the
    row as the provider's left it, so it is made, as the window allows."""
    owner, provider = await bookable_provider(client, cancellation_window_minutes=48 * 60)
    mine = await signed_in(client)
    moving = await booked(client, mine, provider, "10:00")  # inside the window
    found = await together(app, [(owner, (moving, "14:00")), (mine, (moving, "15:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "pending"]
    assert await start_of(app, moving) == on_day("15:00")
    assert [event.action for event in found[1].history].count("rescheduled") == 2


async def test_each_move_of_a_batch_that_released_no_holds_releases_at_its_own_clock(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A batch that changes a guest's unverified booking whose hold has lapsed releases no
    expired holds first (the change comes first): each move's judgment releases them at
    the move's own clock. A hold still live at the first move's clock keeps its time from
    that move; by the second's, it has lapsed and is released."""
    owner, provider = await bookable_provider(client, verify_guest_email=True)
    first, second = await signed_in(client), await signed_in(client)
    clock.now = BOOKING_NOW - timedelta(minutes=40)
    ids = [
        await booked(client, one, provider, at) for one, at in ((first, "09:00"), (second, "11:00"))
    ]
    clock.now = BOOKING_NOW - timedelta(minutes=30)  # unverified for 15 minutes
    guest = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T10:00:00Z")
    )
    assert guest.json()["status"] == "pending_verification", guest.text
    clock.now = BOOKING_NOW - timedelta(minutes=20)  # held for 10 minutes
    held = await hold(client, provider["id"], f"{DAY}T13:00:00Z")
    assert held.status_code == 201, held.text
    clock.now = BOOKING_NOW
    found = await together(
        app,
        [
            (owner, uuid.UUID(guest.json()["id"])),
            (first, (ids[0], "13:00")),  # the hold lapses 2 minutes after this move's clock
            (second, (ids[1], "15:00")),
        ],
        [BOOKING_NOW, BOOKING_NOW - timedelta(minutes=12), BOOKING_NOW],
    )
    assert [outcome(answer) for answer in found] == ["cancelled", "slot_unavailable", "pending"]
    assert await start_of(app, ids[0]) == on_day("09:00")
    assert await start_of(app, ids[1]) == on_day("15:00")


async def test_a_time_handed_on_by_a_move_counts_for_the_next_move_of_the_batch(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """A move frees a time someone waits for, and the waiter, in the same batch, moves an
    appointment of their own with another provider to that very time: the freed time is
    handed on before the next move is judged, so the waiter's move meets their new booking
    and is refused, as it would be a moment later."""
    _, busy = await bookable_provider(client)
    _, other = await bookable_provider(client)
    mover, waiter = await signed_in(client), await signed_in(client)
    leaving = await booked(client, mover, busy, "09:00")
    elsewhere = await booked(client, waiter, other, "14:00")
    joined = await client.post(
        "/waitlist",
        headers=waiter.headers,
        json={"provider_id": busy["id"], "start_datetime": f"{DAY}T09:00:00Z", "mode": "book"},
    )
    assert joined.status_code == 201, joined.text
    found = await together(app, [(mover, (leaving, "11:00")), (waiter, (elsewhere, "09:00"))])
    assert [outcome(answer) for answer in found] == ["pending", "client_conflict"]
    got = (await client.get(f"/waitlist/{joined.json()['id']}", headers=waiter.headers)).json()
    assert got["status"] == "booked", got
    assert await start_of(app, elsewhere) == on_day("14:00")

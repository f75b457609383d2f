"""The outbox hears of bookings as ``BookingFacts``, with the settings of the application that
made the change (passed in by its routers, not read from a session or the process's
settings), on every path that schedules reminders; and the worker asks booking, not its
tables, whether a reminder is still due."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from slotwise.booking.models import Appointment, Status
from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.notifications.worker import Worker
from tests.factories import Clock, bookable_provider, guest_booking, unique_email
from tests.notifications.conftest import SmtpServer, mail_settings, register_client

START = datetime.fromisoformat("2027-03-05T15:00:00+00:00")
OFFSET = 90  # minutes: not the default offsets, which a global read of the settings gives


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return mail_settings(database_url, smtp, reminder_offsets_minutes=[OFFSET])


async def _reminder_leads(app: FastAPI, appointment_id: str) -> list[timedelta]:
    """How long before the appointment's start each of its pending reminders is due."""
    async with app.state.slotwise.db.session(writes=False) as session:
        appointment = await session.get(Appointment, uuid.UUID(appointment_id))
        assert appointment is not None
        due = await session.scalars(
            select(OutboxMessage.due_at).where(
                OutboxMessage.appointment_id == appointment.id,
                OutboxMessage.kind == "reminder",
                OutboxMessage.status == OutboxStatus.PENDING,
            )
        )
        return [appointment.start_at - at for at in due]


async def _client_books(client: httpx.AsyncClient, profile: dict[str, object]) -> str:
    headers = await register_client(client, timezone="Europe/Paris", email=unique_email("r"))
    response = await client.post(
        "/appointments/",
        headers=headers,
        json={"provider_id": profile["id"], "start_datetime": START.isoformat()},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_every_path_that_confirms_schedules_the_applications_reminders(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    assert Settings.model_fields["reminder_offsets_minutes"].default != [OFFSET]
    lead = [timedelta(minutes=OFFSET)]
    hours = ("00:00:00", "23:59:00")
    # Booked and confirmed at once.
    _, profile = await bookable_provider(client, hours=hours, requires_confirmation=False)
    assert await _reminder_leads(app, await _client_books(client, profile)) == lead
    # Booked, then confirmed by the provider.
    provider, confirming = await bookable_provider(
        client, hours=hours, requires_confirmation=True, cancellation_window_minutes=0
    )
    appointment_id = await _client_books(client, confirming)
    assert await _reminder_leads(app, appointment_id) == []
    confirmed = await client.patch(
        f"/appointments/{appointment_id}/status",
        headers=provider.headers,
        json={"status": "confirmed"},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert await _reminder_leads(app, appointment_id) == lead
    # Moved by the provider: the reminders move with it.
    moved = await client.post(
        f"/appointments/{appointment_id}/reschedule",
        headers=provider.headers,
        json={"new_start_time": (START + timedelta(days=1)).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert await _reminder_leads(app, appointment_id) == lead
    # A guest's held booking, once the guest verifies the email.
    _, verifying = await bookable_provider(
        client, hours=hours, requires_confirmation=False, verify_guest_email=True
    )
    held = await client.post(
        "/appointments/", json=guest_booking(verifying["id"], START.isoformat())
    )
    assert held.status_code == 201, held.text
    async with app.state.slotwise.db.session(writes=False) as session:
        context = await session.scalar(
            select(OutboxMessage.context).where(OutboxMessage.kind == "booking_verify")
        )
    assert context is not None
    verified = await client.post(str(context["verify_url"]).split("/api/v1", 1)[1])
    assert verified.status_code == 200, verified.text
    assert await _reminder_leads(app, held.json()["id"]) == lead


@pytest.mark.parametrize(
    "change",
    [
        {"status": Status.CANCELLED},
        {
            "start_at": START + timedelta(hours=2),
            "end_at": START + timedelta(hours=3),
            "blocked_start_at": START + timedelta(hours=2),
            "blocked_end_at": START + timedelta(hours=3),
        },
    ],
    ids=["no longer confirmed", "moved"],
)
async def test_a_reminder_whose_appointment_changed_behind_the_outbox_is_withdrawn(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: Clock,
    smtp: SmtpServer,
    worker: Worker,
    change: dict[str, object],
) -> None:
    """The worker asks booking (``publish.reminder_still_due``) at send time: a change that
    did not withdraw the reminder (one racing the worker's claim) still stops it."""
    _, profile = await bookable_provider(
        client, hours=("00:00:00", "23:59:00"), requires_confirmation=False
    )
    appointment_id = await _client_books(client, profile)
    async with app.state.slotwise.db.session(writes=True) as session, session.begin():
        await session.execute(
            update(Appointment).where(Appointment.id == uuid.UUID(appointment_id)).values(**change)
        )
    outcome = await worker.run_until_idle(now=START - timedelta(minutes=OFFSET))
    assert outcome.withdrawn == 1
    assert [m for m in smtp.inbox.messages if m["X-Slotwise-Kind"] == "reminder"] == []


async def test_a_reminder_still_due_is_sent(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, profile = await bookable_provider(
        client, hours=("00:00:00", "23:59:00"), requires_confirmation=False
    )
    await _client_books(client, profile)
    outcome = await worker.run_until_idle(now=START - timedelta(minutes=OFFSET))
    assert outcome.withdrawn == 0
    assert [m["X-Slotwise-Kind"] for m in smtp.inbox.messages].count("reminder") == 1

"""Reminder timing with a controlled clock (offsets 24 h and 1 h in these tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from slotwise.notifications.worker import Worker
from tests.factories import Clock, bookable_provider, unique_email
from tests.notifications.conftest import SmtpServer, register_client

FAR = datetime.fromisoformat("2027-03-05T15:00:00+00:00")
MINUTE = timedelta(minutes=1)


async def _booked(
    client: httpx.AsyncClient, start: datetime
) -> tuple[dict[str, str], dict[str, str], str, str]:
    provider, profile = await bookable_provider(
        client,
        hours=("00:00:00", "23:59:00"),
        requires_confirmation=False,
        cancellation_window_minutes=0,
    )
    email = unique_email("reminded")
    headers = await register_client(client, timezone="Europe/Paris", email=email)
    response = await client.post(
        "/appointments/",
        headers=headers,
        json={"provider_id": profile["id"], "start_datetime": start.isoformat()},
    )
    assert response.status_code == 201, response.text
    return provider.headers, headers, email, response.json()["id"]


def _reminders(smtp: SmtpServer, email: str) -> list[str]:
    return [
        str(m["Subject"]).strip()
        for m in smtp.inbox.to(email)
        if m["X-Slotwise-Kind"] == "reminder"
    ]


async def test_booked_far_ahead_gets_both_reminders_on_time_and_once(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, _, email, _ = await _booked(client, FAR)
    await worker.run_until_idle(now=FAR - timedelta(hours=24) - MINUTE)
    assert _reminders(smtp, email) == []
    await worker.run_until_idle(now=FAR - timedelta(hours=24))
    assert _reminders(smtp, email) == [
        "Reminder: Appointment with Test Person, Friday 5 March 2027, 16:00 CET"
    ]
    (reminder,) = [m for m in smtp.inbox.to(email) if m["X-Slotwise-Kind"] == "reminder"]
    assert "tomorrow" in str(reminder.get_body(preferencelist=("plain",)).get_content())
    await worker.run_until_idle(now=FAR - timedelta(hours=1) - MINUTE)
    assert len(_reminders(smtp, email)) == 1
    await worker.run_until_idle(now=FAR - timedelta(hours=1))
    await worker.run_until_idle(now=FAR + timedelta(hours=2))
    assert len(_reminders(smtp, email)) == 2


async def test_booked_three_hours_ahead_gets_only_the_one_hour_reminder(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    start = clock.now + timedelta(hours=3)
    _, _, email, _ = await _booked(client, start)
    await worker.run_until_idle(now=clock.now)
    assert _reminders(smtp, email) == []
    await worker.run_until_idle(now=start - timedelta(hours=1))
    await worker.run_until_idle(now=start)
    (subject,) = _reminders(smtp, email)
    assert "Reminder" in subject


async def test_rescheduling_moves_the_reminders(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    provider, _, email, appointment_id = await _booked(client, FAR)
    later = FAR + timedelta(days=2)
    response = await client.post(
        f"/appointments/{appointment_id}/reschedule",
        headers=provider,
        json={"new_start_time": later.isoformat()},
    )
    assert response.status_code == 200, response.text
    await worker.run_until_idle(now=FAR)  # the old times pass: nothing
    assert _reminders(smtp, email) == []
    await worker.run_until_idle(now=later - timedelta(hours=24))
    assert _reminders(smtp, email) == [
        "Reminder: Appointment with Test Person, Sunday 7 March 2027, 16:00 CET"
    ]
    await worker.run_until_idle(now=later)
    assert len(_reminders(smtp, email)) == 2


async def test_cancelling_removes_the_reminders(
    client: httpx.AsyncClient, clock: Clock, smtp: SmtpServer, worker: Worker
) -> None:
    _, customer, email, appointment_id = await _booked(client, FAR)
    response = await client.post(f"/appointments/{appointment_id}/cancel", headers=customer)
    assert response.status_code == 200, response.text
    await worker.run_until_idle(now=FAR + timedelta(hours=1))
    assert _reminders(smtp, email) == []
    kinds = sorted(str(m["X-Slotwise-Kind"]) for m in smtp.inbox.to(email))
    assert kinds == ["booking_cancelled", "booking_confirmed"]

"""Syncs in the background: the worker syncs what is due, one worker per calendar at a time
(a lease); a calendar failing for a day is paused and its provider emailed once, through a
real SMTP server; a good sync resumes it. And, with SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING, a
booking sees an event added a moment ago."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from slotwise.booking.publish import reminder_still_due
from slotwise.config import Settings
from slotwise.external.worker import CalendarWorker, policy_of
from slotwise.main import create_app
from slotwise.notifications.sender import SmtpSender
from slotwise.notifications.worker import Worker
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.external.conftest import CALENDAR_SETTINGS
from tests.external.helpers import connect, new_york_provider, slot_times, stored_busy, sync
from tests.external.ics_server import CalendarServer
from tests.factories import BOOKING_NOW, Clock, signed_in
from tests.notifications.conftest import SmtpServer, mail_settings
from tests.servers import free_port


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return mail_settings(database_url, smtp, **CALENDAR_SETTINGS)


def calendar_worker(
    app: FastAPI, settings: Settings, name: str = "calendars:test"
) -> CalendarWorker:
    return CalendarWorker(db=app.state.slotwise.db, policy=policy_of(settings), worker_id=name)


async def test_the_worker_syncs_what_is_due_and_comes_back_after_the_interval(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    calendar_server: CalendarServer,
    clock: Clock,
) -> None:
    account, profile = await new_york_provider(client)
    calendar = await connect(client, account, calendar_server.serve("weekly_dst.ics"))
    worker = calendar_worker(app, settings)
    assert await worker.run_once(now=BOOKING_NOW) == 1
    assert len(calendar_server.asked) == 1
    assert "10:00" not in await slot_times(client, profile["public_handle"], "2027-03-02")
    shown = (
        await client.get(f"/providers/me/calendars/{calendar['id']}", headers=account.headers)
    ).json()
    assert shown["sync_status"] == "ok"
    assert shown["next_sync_at"].startswith("2027-03-01T12:05:00")
    assert await worker.run_once(now=BOOKING_NOW + timedelta(minutes=4)) == 0
    assert await worker.run_once(now=BOOKING_NOW + timedelta(minutes=5)) == 1
    assert len(calendar_server.asked) == 2


async def test_two_workers_never_sync_one_calendar_at_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    calendar_server: CalendarServer,
    clock: Clock,
) -> None:
    account, _profile = await new_york_provider(client)
    for name in ("one.ics", "two.ics", "three.ics"):
        await connect(client, account, calendar_server.serve(name, "weekly_dst.ics"))
    first, second = calendar_worker(app, settings, "a"), calendar_worker(app, settings, "b")
    claimed = await asyncio.gather(
        first.run_once(now=BOOKING_NOW), second.run_once(now=BOOKING_NOW)
    )
    assert sum(claimed) == 3
    assert sorted(asked["path"] for asked in calendar_server.asked) == [
        "/one.ics",
        "/three.ics",
        "/two.ics",
    ]


async def test_a_calendar_failing_for_a_day_is_paused_and_its_provider_emailed_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    calendar_server: CalendarServer,
    smtp: SmtpServer,
    clock: Clock,
) -> None:
    account, profile = await new_york_provider(client)
    calendar = await connect(
        client, account, calendar_server.serve("mine.ics", "weekly_dst.ics"), name="Work"
    )
    worker = calendar_worker(app, settings)
    await worker.run_once(now=BOOKING_NOW)
    calendar_server.status = 503
    mailer = Worker(
        db=app.state.slotwise.db,
        settings=settings,
        sender=SmtpSender(settings),
        reminder_still_due=reminder_still_due,
    )
    first_failure = BOOKING_NOW + timedelta(minutes=5)
    for moment in (first_failure, first_failure + timedelta(hours=23, minutes=55)):
        assert await worker.run_once(now=moment) == 1
        await mailer.run_until_idle(now=moment)
        shown = (
            await client.get(f"/providers/me/calendars/{calendar['id']}", headers=account.headers)
        ).json()
        assert (shown["paused"], shown["sync_status"]) == (False, "error")
    assert smtp.inbox.messages == []
    moment = first_failure + timedelta(hours=24)  # failing for a day
    assert await worker.run_once(now=moment) == 1
    await mailer.run_until_idle(now=moment)
    shown = (
        await client.get(f"/providers/me/calendars/{calendar['id']}", headers=account.headers)
    ).json()
    assert shown["paused"] is True
    assert shown["sync_status"] == "error"
    assert shown["last_error"] == "HTTP 503"
    assert shown["failing_since"].startswith("2027-03-01T12:05:00")
    assert shown["next_sync_at"] is None
    mails = smtp.inbox.to(account.email)
    assert [m["X-Slotwise-Kind"] for m in mails] == ["calendar_paused"]
    assert mails[0]["Subject"] == "Your calendar Work is no longer synced"
    assert "HTTP 503" in mails[0].get_body(preferencelist=("plain",)).get_content()
    # Paused: the worker leaves it; the busy time of the last good sync still holds.
    asked = len(calendar_server.asked)
    assert await worker.run_once(now=moment + timedelta(hours=1)) == 0
    assert len(calendar_server.asked) == asked
    assert len(await stored_busy(app, calendar["id"])) == 4
    assert "10:00" not in await slot_times(client, profile["public_handle"], "2027-03-02")
    # A sync on demand that succeeds resumes it.
    calendar_server.status = None
    clock.now = moment + timedelta(hours=2)
    resumed = await sync(client, account, calendar["id"])
    assert (resumed["paused"], resumed["sync_status"], resumed["failing_since"]) == (
        False,
        "ok",
        None,
    )
    assert await worker.run_once(now=clock.now + timedelta(minutes=5)) == 1
    await mailer.run_until_idle(now=clock.now + timedelta(minutes=5))
    assert len(smtp.inbox.to(account.email)) == 1


async def test_a_booking_syncs_the_providers_calendars_first_when_the_settings_say_so(
    database_url: str, calendar_server: CalendarServer
) -> None:
    for before_booking in (False, True):
        settings = make_settings(
            database_url, calendar_sync_before_booking=before_booking, **CALENDAR_SETTINGS
        )
        app = create_app(settings)
        app.dependency_overrides[get_now] = lambda: BOOKING_NOW
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
                account, profile = await new_york_provider(c)
                path = f"{before_booking}.ics"
                calendar = await connect(c, account, calendar_server.serve(path, "all_day.ics"))
                await sync(c, account, calendar["id"])
                calendar_server.serve(path, "weekly_dst.ics")  # a meeting added since
                booker = await signed_in(c)
                answer = await c.post(
                    "/appointments/",
                    headers=booker.headers,
                    json={
                        "provider_id": profile["public_handle"],
                        "start_datetime": "2027-03-02T10:00:00",
                    },
                )
                if before_booking:
                    assert (answer.status_code, answer.json()["code"]) == (409, "calendar_busy")
                else:  # the last synced busy time did not have it yet
                    assert answer.status_code == 201, answer.text
        finally:
            await app.state.slotwise.aclose()

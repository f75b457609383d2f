"""A series in calendars: one event with an RRULE (TZID start, COUNT), EXDATEs for what is not
booked, RECURRENCE-ID overrides for what moved; expanded by a real parser
(``recurring-ical-events``), it gives exactly the active occurrences the API shows, across DST
in Europe/Berlin and America/Santiago. The same for the series' mailed invitation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import icalendar
import pytest
import recurring_ical_events
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.calendars import ics
from slotwise.notifications.models import OutboxMessage
from tests.factories import Account, Clock, bookable_provider, guest_booking, signed_in

CASES = [
    # zone, first occurrence (wall time), a week with a transition inside the series
    ("Europe/Berlin", "2027-03-17T10:00:00"),  # CET -> CEST on 2027-03-28
    ("America/Santiago", "2027-03-24T10:00:00"),  # -03 -> -04 on 2027-04-04 (at midnight)
]


def _expanded(calendar: icalendar.Calendar) -> set[tuple[datetime, datetime]]:
    assert calendar.get_missing_tzids() == set()
    found = recurring_ical_events.of(calendar).between(datetime(2027, 1, 1), datetime(2028, 1, 1))
    return {(e.decoded("DTSTART"), e.decoded("DTEND")) for e in found}


def _active(series: dict[str, Any]) -> set[tuple[datetime, datetime]]:
    return {
        (datetime.fromisoformat(o["start_at"]), datetime.fromisoformat(o["end_at"]))
        for o in series["occurrences"]
        if o["status"] in ("pending", "confirmed")
    }


async def _series(
    client: httpx.AsyncClient, zone: str, first: str
) -> tuple[Account, Account, dict[str, Any]]:
    owner, provider = await bookable_provider(
        client, timezone=zone, requires_confirmation=False, slot_interval_minutes=30
    )
    kim = await signed_in(client)
    # The 3rd week is taken: with skip, it is not booked (an EXDATE).
    third = datetime.fromisoformat(first).date().toordinal() + 14
    taken_on = datetime.fromordinal(third).date().isoformat()
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{taken_on}T10:00:00")
    )
    assert taken.status_code == 201, taken.text
    created = await client.post(
        "/appointments/series",
        headers=kim.headers,
        json={
            "provider_id": provider["id"],
            "start_datetime": first,
            "count": 7,
            "on_conflict": "skip",
        },
    )
    assert created.status_code == 201, created.text
    return owner, kim, created.json()


@pytest.mark.parametrize(("zone", "first"), CASES)
async def test_export_expands_to_the_active_occurrences(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI, zone: str, first: str
) -> None:
    owner, kim, series = await _series(client, zone, first)
    ids = [o["id"] for o in series["occurrences"]]  # weeks 0, 1, 3, 4, 5, 6
    # One cancelled (week 1), one moved by 30 minutes (week 3), the tail cut from week 5.
    assert (await client.post(f"/appointments/{ids[1]}/cancel", headers=kim.headers)).is_success
    moved_to = series["occurrences"][2]["start_at"][:11] + "10:30:00"
    moved = await client.post(
        f"/appointments/{ids[2]}/reschedule", headers=kim.headers, json={"new_start_time": moved_to}
    )
    assert moved.status_code == 200, moved.text
    cut = await client.post(
        f"/appointments/series/{series['id']}/cancel",
        headers=owner.headers,
        json={"from_appointment_id": ids[4]},
    )
    assert cut.status_code == 200, cut.text
    now = (await client.get(f"/appointments/series/{series['id']}", headers=kim.headers)).json()
    assert len(_active(now)) == 3

    for account in (kim, owner):
        text = await client.get("/appointments/export-all.ics", headers=account.headers)
        calendar = icalendar.Calendar.from_ical(text.content)
        series_events = [
            e for e in calendar.walk("VEVENT") if str(e["UID"]) == f"{series['id']}@slotwise"
        ]
        master = next(e for e in series_events if "RRULE" in e)
        assert master["DTSTART"].params["TZID"] == zone  # a wall time, never UTC, on a rule
        assert master["RRULE"]["COUNT"] == [7]
        assert "UNTIL" not in master["RRULE"]
        assert "RDATE" not in master
        overrides = [e for e in series_events if "RECURRENCE-ID" in e]
        assert len(overrides) == 1  # the moved one
        assert overrides[0]["RECURRENCE-ID"].params["TZID"] == zone
        expanded = {
            pair for pair in _expanded(calendar) if pair not in _singles(calendar, series["id"])
        }
        assert expanded == _active(now)

    # One occurrence's export is its whole series.
    one = await client.get(f"/appointments/{ids[0]}/export.ics", headers=kim.headers)
    assert _expanded(icalendar.Calendar.from_ical(one.content)) == _active(now)


def _singles(calendar: icalendar.Calendar, series_id: str) -> set[tuple[datetime, datetime]]:
    return {
        (e.decoded("DTSTART"), e.decoded("DTEND"))
        for e in calendar.walk("VEVENT")
        if str(e["UID"]) != f"{series_id}@slotwise"
    }


@pytest.mark.parametrize(("zone", "first"), CASES)
async def test_the_mailed_invitation_expands_to_the_booked_occurrences(
    client: httpx.AsyncClient, clock: Clock, app: FastAPI, zone: str, first: str
) -> None:
    _, _, series = await _series(client, zone, first)
    async with app.state.slotwise.db.transaction(writes=False) as session:
        context = await session.scalar(
            select(OutboxMessage.context).where(OutboxMessage.kind == "series_confirmed")
        )
    assert context is not None
    text = ics.from_snapshot(context["invitation"])
    calendar = icalendar.Calendar.from_ical(text)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert _expanded(calendar) == _active(series)
    assert len(_active(series)) == 6  # 7 weeks, the 3rd taken

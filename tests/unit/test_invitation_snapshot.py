"""Invitations are queued as snapshots and rendered when sent: the same document either way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import icalendar

from slotwise.calendars import ics
from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage, OutboxStatus

STAMP = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ENTRY = ics.CalendarEntry(
    appointment_id=uuid.uuid4(),
    sequence=2,
    status="confirmed",
    start_at=datetime(2027, 3, 5, 15, 0, tzinfo=UTC),
    end_at=datetime(2027, 3, 5, 16, 0, tzinfo=UTC),
    title="Piano lesson with Ada Lovelace",
    provider_name="Ada Lovelace",
    provider_email="ada@example.com",
    client_name="Clara Schumann",
    client_email="clara@example.com",
    notes="Bring the Brahms, please; and a pencil.",
)


def _row(*, context: dict[str, object], ics_text: str | None) -> OutboxMessage:
    return OutboxMessage(
        id=uuid.uuid4(),
        message_id="<m@slotwise>",
        kind="booking_confirmed",
        recipient_email="clara@example.com",
        recipient_name="Clara Schumann",
        recipient_timezone="Europe/Berlin",
        context={
            "title": ENTRY.title,
            "start_at": ENTRY.start_at.isoformat(),
            "end_at": ENTRY.end_at.isoformat(),
            **context,
        },
        ics=ics_text,
        status=OutboxStatus.PENDING,
        due_at=STAMP,
        attempts=0,
        created_at=STAMP,
    )


def _attachment(row: OutboxMessage) -> icalendar.Calendar:
    message = render.email(row, sender="Slotwise <noreply@example.com>")
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert part.get_param("method") == calendar["METHOD"]
    return calendar


def test_a_snapshot_renders_the_document_rendered_at_once() -> None:
    for method in (ics.Method.REQUEST, ics.Method.CANCEL):
        snapshot = ics.snapshot(ENTRY, stamp_at=STAMP + timedelta(hours=1), method=method)
        direct = ics.document([ENTRY], stamp_at=STAMP + timedelta(hours=1), method=method)
        assert ics.from_snapshot(snapshot) == direct


def test_a_message_queued_with_a_snapshot_carries_the_invitation() -> None:
    snapshot = ics.snapshot(ENTRY, stamp_at=STAMP, method=ics.Method.REQUEST)
    calendar = _attachment(_row(context={"invitation": snapshot}, ics_text=None))
    (event,) = calendar.walk("VEVENT")
    assert calendar["METHOD"] == "REQUEST"
    assert event.decoded("dtstart") == ENTRY.start_at
    assert int(event["SEQUENCE"]) == 2
    assert "Brahms" in str(event["DESCRIPTION"])


def test_a_message_queued_rendered_by_an_earlier_version_still_carries_it() -> None:
    rendered = ics.document([ENTRY], stamp_at=STAMP, method=ics.Method.CANCEL)
    calendar = _attachment(_row(context={}, ics_text=rendered))
    assert calendar["METHOD"] == "CANCEL"
    assert calendar.walk("VEVENT")[0]["STATUS"] == "CANCELLED"


def test_a_message_without_an_invitation_has_no_attachment() -> None:
    message = render.email(_row(context={}, ics_text=None), sender="noreply@example.com")
    assert not any(p.get_content_type() == "text/calendar" for p in message.walk())

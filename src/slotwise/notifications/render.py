"""Outbox rows to email messages: Jinja2 templates, times in the recipient's own zone.

Rendering depends only on the row, so a retried message is the same message.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from slotwise.calendars import ics
from slotwise.notifications.models import OutboxMessage
from slotwise.notifications.outbox import INVITATION, MANAGE_URL

SUBJECTS = {
    "booking_received": "New booking: {title}, {start}",
    "booking_pending": "Booking received, awaiting confirmation: {title}, {start}",
    "booking_confirmed": "Confirmed: {title}, {start}",
    "booking_declined": "Declined: {title}, {start}",
    "booking_cancelled": "Cancelled: {title}, {start}",
    "booking_rescheduled": "Rescheduled: {title}, now {start}",
    "reminder": "Reminder: {title}, {start}",
    "password_reset": "Reset your Slotwise password",
    "booking_verify": "Confirm your email to keep your booking: {title}, {start}",
    "webhook_disabled": "Your Slotwise webhook was disabled",
    "series_verify": "Confirm your email to keep your series: {title}, from {start}",
    "calendar_paused": "Your calendar {calendar} is no longer synced",
    "team_invitation": "You are invited to join the team {team}",
    "series_received": "New series: {title}, from {start}",
    "series_pending": "Series received, awaiting confirmation: {title}, from {start}",
    "series_confirmed": "Confirmed: {title}, from {start}",
    "series_declined": "Declined: {title}, from {start}",
    "series_cancelled": "Cancelled: {title}, from {start}",
    "waitlist_offer": "A place is free for you: {title}, {start}",
}


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("slotwise.notifications", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _local(value: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(value).astimezone(zone)


def _day_and_time(at: datetime) -> str:
    return f"{at:%A} {at.day} {at:%B %Y, %H:%M} {at.tzname()}"


def _lead(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "tomorrow" if days == 1 else f"in {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "in 1 hour" if hours == 1 else f"in {hours} hours"
    return f"in {minutes} minutes"


def template_context(row: OutboxMessage) -> dict[str, Any]:
    zone = ZoneInfo(row.recipient_timezone)
    context: dict[str, Any] = dict(row.context)
    context["recipient_name"] = row.recipient_name
    context["zone"] = row.recipient_timezone
    context.setdefault("notes", None)
    context.setdefault("reason", None)
    context.setdefault(MANAGE_URL, None)  # a guest's first message only, until it is finished
    if "hold_until" in context:
        context["hold_until_time"] = _day_and_time(_local(context["hold_until"], zone))
    if "start_at" in context:
        context["start"] = _day_and_time(_local(context["start_at"], zone))
        context["end_time"] = f"{_local(context['end_at'], zone):%H:%M}"
    if "old_start_at" in context:
        context["old_start"] = _day_and_time(_local(context["old_start_at"], zone))
        context["old_end_time"] = f"{_local(context['old_end_at'], zone):%H:%M}"
    if "failing_since" in context:
        context["failing_since_time"] = _day_and_time(_local(context["failing_since"], zone))
    if "occurrence_starts" in context:
        context["occurrences"] = [
            _day_and_time(_local(start, zone)) for start in context["occurrence_starts"]
        ]
    if "offset_minutes" in context:
        context["lead"] = _lead(int(context["offset_minutes"]))
    context["subject"] = SUBJECTS[row.kind].format_map(_Lenient(context))
    return context


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def _invitation(row: OutboxMessage) -> str | None:
    """The calendar attachment: rendered now from the snapshot queued with the message (rows
    queued by earlier versions carry it rendered, in ``ics``)."""
    snapshot = row.context.get(INVITATION)
    return ics.from_snapshot(snapshot) if snapshot is not None else row.ics


def email(row: OutboxMessage, *, sender: str) -> EmailMessage:
    context = template_context(row)
    environment = _environment()
    message = EmailMessage(policy=policy.SMTP)
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(row.created_at)
    message["From"] = sender
    message["To"] = row.recipient_email
    message["Subject"] = context["subject"]
    message["X-Slotwise-Kind"] = row.kind
    message.set_content(environment.get_template(f"{row.kind}.txt").render(context))
    message.add_alternative(
        environment.get_template(f"{row.kind}.html").render(context), subtype="html"
    )
    invitation = _invitation(row)
    if invitation is not None:
        method = "CANCEL" if "METHOD:CANCEL" in invitation else "REQUEST"
        message.add_attachment(
            invitation.encode(),
            maintype="text",
            subtype="calendar",
            filename="invite.ics",
            params={"method": method},
        )
    return message

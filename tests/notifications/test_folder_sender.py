"""Development mail: without SMTP, each message is one .eml file (a retry overwrites it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from slotwise.notifications import render
from slotwise.notifications.models import OutboxMessage, OutboxStatus
from slotwise.notifications.sender import FolderSender


def _row() -> OutboxMessage:
    return OutboxMessage(
        id=uuid.uuid4(),
        message_id=f"<{uuid.uuid4()}@slotwise>",
        kind="password_reset",
        recipient_email="dev@example.com",
        recipient_name="Dev",
        recipient_timezone="UTC",
        context={"reset_url": "http://x/reset-password?token=abc", "valid_minutes": 60},
        status=OutboxStatus.PENDING,
        due_at=datetime(2027, 1, 1, tzinfo=UTC),
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
        attempts=0,
    )


async def test_folder_sender_writes_one_file_per_message(tmp_path: Path) -> None:
    sender = FolderSender(tmp_path / "mail")
    row = _row()
    await sender.send(render.email(row, sender="Slotwise <no-reply@example.com>"))
    await sender.send(render.email(row, sender="Slotwise <no-reply@example.com>"))
    (path,) = (tmp_path / "mail").iterdir()
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == row.message_id
    assert parsed["To"] == "dev@example.com"
    body = parsed.get_body(preferencelist=("html",))
    assert body is not None
    assert 'href="http://x/reset-password?token=abc"' in str(body.get_content())


def test_html_is_escaped_and_text_is_not() -> None:
    row = _row()
    row.kind = "booking_cancelled"
    row.context = {
        "title": "Cut <b>& dry</b>",
        "provider_name": "P",
        "client_name": "C",
        "start_at": "2027-03-28T00:30:00+00:00",
        "end_at": "2027-03-28T01:30:00+00:00",
        "status": "cancelled",
        "reason": "<script>x</script>",
    }
    row.recipient_timezone = "Europe/Paris"
    message = render.email(row, sender="s@example.com")
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None
    assert text is not None
    assert "&lt;script&gt;" in str(html.get_content())
    assert "<script>x</script>" in str(text.get_content())
    assert "Sunday 28 March 2027, 01:30 CET" in str(text.get_content())

"""A real SMTP server on loopback (aiosmtpd) and a worker driven by the test's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from slotwise.booking.publish import reminder_still_due
from slotwise.config import Settings
from slotwise.notifications.sender import SmtpSender
from slotwise.notifications.worker import Worker
from slotwise.state import get_now
from tests.conftest import app_for, closed, make_settings
from tests.factories import BOOKING_NOW, Clock
from tests.servers import free_port


@dataclass
class Inbox:
    """What the SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        parsed["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def kinds(self) -> list[tuple[str, str]]:
        return sorted((str(m["To"]), str(m["X-Slotwise-Kind"])) for m in self.messages)


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def mail_settings(database_url: str, smtp: SmtpServer, **overrides: object) -> Settings:
    """Test settings that mail through ``smtp``, with these tests' reminders and retries."""
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "smtp_timeout_seconds": 5,
        "reminder_offsets_minutes": [1440, 60],
        "outbox_retry_base_seconds": 60,
        "outbox_max_attempts": 4,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return mail_settings(database_url, smtp)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = app_for(settings)
    yield application
    await closed(application)


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


@pytest.fixture
def worker(app: FastAPI, settings: Settings) -> Worker:
    return Worker(
        db=app.state.slotwise.db,
        settings=settings,
        sender=SmtpSender(settings),
        reminder_still_due=reminder_still_due,
    )


async def register_client(
    client: httpx.AsyncClient, *, timezone: str, email: str
) -> dict[str, str]:
    response = await client.post(
        "/auth/register",
        json={
            "email": email,
            "password": "a-long-and-unusual-passphrase",
            "full_name": "Clara Client",
            "timezone": timezone,
        },
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        "/auth/login", data={"username": email, "password": "a-long-and-unusual-passphrase"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}

"""External calendar tests: settings with calendar keys, and calls allowed to loopback over
http (the servers the tests start: iCalendar files, Radicale), as the webhook tests do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.external.ics_server import CalendarServer, running_calendar_server
from tests.external.radicale_server import Radicale, running_radicale
from tests.factories import BOOKING_NOW, Clock

# Two keys: the first encrypts, both decrypt (a rotation under way).
KEYS = [
    "hq7v0S6pV1mX4WlYp3m8k1sGmT9rZ2bN5cD7eF0aB1c=",
    "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=",
]
CALENDAR_SETTINGS: dict[str, object] = {
    "calendar_keys": KEYS,
    "outbound_allow": ["127.0.0.1"],
    "outbound_allow_http": True,
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, **CALENDAR_SETTINGS)


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)


@pytest.fixture
def calendar_server() -> Iterator[CalendarServer]:
    with running_calendar_server() as running:
        yield running


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    with running_radicale(tmp_path) as running:
        yield running

"""Webhook tests: settings that let calls reach a receiver on loopback over http."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.state import get_now
from tests.conftest import make_settings
from tests.factories import BOOKING_NOW, Clock
from tests.receiver import Receiver, running_receiver

LOOPBACK_ALLOWED: dict[str, object] = {
    "outbound_allow": ["127.0.0.1"],
    "outbound_allow_http": True,
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, **LOOPBACK_ALLOWED)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from slotwise.state import get_now
from tests.factories import BOOKING_NOW, Clock


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    """The request clock, for bookings (keys themselves live in real time, as tokens do)."""
    controlled = Clock(BOOKING_NOW)
    app.dependency_overrides[get_now] = controlled
    yield controlled
    app.dependency_overrides.pop(get_now, None)

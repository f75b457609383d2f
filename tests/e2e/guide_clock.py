"""Slotwise on the API guide's day: ``python -m tests.e2e.guide_clock serve PORT`` or
``... run slotwise COMMAND...``.

docs/api.md is written as of one moment (GUIDE_NOW, a Saturday: its dates and the times
the demo books stay true as the years pass). The server the guide test starts is the real
application served by uvicorn, with its request clock (the ``get_now`` dependency, the
one tests override) and the waitlist's background sweep starting at that moment and
ticking from there; ``slotwise demo`` is populated as of the same moment. Tokens keep the
real clock, as in production.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

GUIDE_NOW = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # Saturday, 09:00 in New York
_STARTED = datetime.now(UTC)


def guide_now() -> datetime:
    return GUIDE_NOW + (datetime.now(UTC) - _STARTED)


# Seconds the server's request clock runs ahead, while this file (in the server's working
# directory, the guide's) says so: a hidden step of the guide writes it to show what time
# does (a hold that ends), and removes it after.
AHEAD = Path("guide-clock-ahead")


def _ahead() -> timedelta:
    """A small file's read: the guide's server serves one request at a time."""
    try:
        return timedelta(seconds=float(AHEAD.read_text()))
    except FileNotFoundError:
        return timedelta(0)


def _clock() -> datetime:
    return guide_now() + _ahead()


async def _request_clock() -> datetime:
    return _clock()


def serve(port: int) -> None:
    from slotwise.booking import waitlist
    from slotwise.config import get_settings
    from slotwise.main import create_app
    from slotwise.state import get_now

    app = create_app(get_settings())
    app.dependency_overrides[get_now] = _request_clock
    # The waitlist's background sweep on the guide's day too: on the real clock, every offer
    # the guide makes (for a day now past) looked ended to it, and a sweep that came between
    # an offer and its booking passed it on.
    waitlist._now = _clock  # type: ignore[assignment]
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def slotwise(arguments: list[str]) -> None:
    """``slotwise ARGUMENTS`` as the CLI runs it, with ``demo`` populated as of the guide."""
    from slotwise import migrate
    from slotwise.cli import app
    from slotwise.config import get_settings
    from slotwise.demo import populate

    if arguments != ["demo"]:
        app(arguments)
        return
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    for line in asyncio.run(populate(settings, now=guide_now())):
        print(line)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["serve", port]:
            serve(int(port))
        case ["run", "slotwise", *arguments]:
            slotwise(arguments)
        case other:
            raise SystemExit(f"usage: serve PORT | run slotwise COMMAND... (not {other})")

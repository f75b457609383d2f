"""What a worker loads: the CalDAV client and what it brings (lxml, requests) only once a
CalDAV calendar is talked to, not when the app is built (`external/caldav_source.py`)."""

from __future__ import annotations

import subprocess
import sys

LOADED = """
import sys
from slotwise.config import Settings
from slotwise.main import create_app
create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:",
                    secret_key="k" * 64))
print(" ".join(sorted(name for name in ("caldav", "lxml", "requests") if name in sys.modules)))
"""


def test_building_the_app_loads_no_caldav_client() -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", LOADED], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == []

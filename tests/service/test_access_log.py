"""The access log (docs/operations.md, "Logs"): one line a request, with its method, path,
route template, status, duration and the request id its response carries; none below the
configured level."""

from __future__ import annotations

import json

import httpx
import pytest

from slotwise.main import create_app
from tests.conftest import make_settings


async def _requests(
    database_url: str, level: str, capsys: pytest.CaptureFixture[str]
) -> list[dict]:
    """The access lines of two requests to an application logging JSON at ``level``, and
    the two responses' request ids."""
    app = create_app(make_settings(database_url, log_level=level, log_json=True))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            capsys.readouterr()  # what was written before
            found = await client.get("/health")
            refused = await client.get(
                "/api/v1/users/00000000-0000-0000-0000-000000000000",
                headers={"X-Request-ID": "given-by-the-caller"},
            )
    finally:
        await app.state.slotwise.aclose()
    assert found.status_code == 200
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "given-by-the-caller"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    seen = [line for line in lines if line.get("event") == "request"]
    for line, response in zip(seen, (found, refused), strict=False):
        assert line.pop("request_id") == response.headers["x-request-id"]
        assert line.pop("duration_ms") >= 0
        assert line.pop("timestamp")
    return seen


async def test_each_request_is_one_line_of_the_access_log(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _requests(database_url, "INFO", capsys) == [
        {
            "event": "request",
            "level": "info",
            "method": "GET",
            "path": "/health",
            "route": "/health",
            "status": 200,
        },
        {
            "event": "request",
            "level": "info",
            "method": "GET",
            "path": "/api/v1/users/00000000-0000-0000-0000-000000000000",
            "route": "/api/v1/users/{user_id}",
            "status": 401,
        },
    ]


async def test_no_access_line_below_the_level(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _requests(database_url, "WARNING", capsys) == []

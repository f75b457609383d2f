"""A bug still gets a complete 500 in the error shape, and the connection stays usable."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.main import create_app
from tests.servers import free_port


def _raise() -> None:
    raise RuntimeError("a bug")


@pytest.fixture
async def buggy_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    application.add_api_route("/api/v1/bug", _raise)
    yield application
    await application.state.slotwise.aclose()


async def test_an_unexpected_error_is_answered_not_raised(buggy_app: FastAPI) -> None:
    # raise_app_exceptions: an exception that leaves the application fails the test, as a
    # server would drop the connection on it.
    transport = httpx.ASGITransport(app=buggy_app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/v1/bug", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_error",
        "message": "An unexpected error occurred.",
        "details": None,
        "request_id": "bug-1",
    }
    assert response.headers["x-request-id"] == "bug-1"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_the_connection_is_kept_after_a_500(buggy_app: FastAPI) -> None:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(buggy_app, host="127.0.0.1", port=port, log_level="critical")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = "GET {} HTTP/1.1\r\nHost: test\r\n\r\n"
        writer.write(request.format("/api/v1/bug").encode())
        status, headers, body = await _read_response(reader)
        assert status == 500
        assert json.loads(body)["code"] == "internal_error"
        assert headers.get("connection") != "close"
        writer.write(request.format("/health").encode())  # the same connection
        status, _, _ = await _read_response(reader)
        assert status == 200
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    finally:
        server.should_exit = True
        await serving

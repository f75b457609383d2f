"""The booking route's own path (booking.route): the common request past FastAPI's
dependency graph, every other one through it, the same answers either way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from slotwise.config import Settings
from slotwise.state import get_app_state, get_now
from tests.factories import Account, Clock, bookable_provider, guest_booking, signed_in

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose dependencies FastAPI's handler solved, in order."""
    paths: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        paths.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return paths


def _booking(provider_id: str, start: str) -> dict[str, object]:
    return {"provider_id": provider_id, "start_datetime": start, "notes": "Lesson"}


async def _provider_and_client(
    client: httpx.AsyncClient, solved: list[str]
) -> tuple[dict[str, Any], Account]:
    """A bookable provider and a signed-in client; what setting them up solved forgotten."""
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    solved.clear()
    return provider, customer


async def test_the_common_booking_is_served_without_the_dependency_graph(
    client: httpx.AsyncClient, clock: Clock, solved: list[str]
) -> None:
    provider, customer = await _provider_and_client(client, solved)
    signed = await client.post(
        "/appointments/",
        headers={**customer.headers, "Content-Type": "application/json; charset=utf-8"},
        content=json.dumps(_booking(provider["id"], f"{DAY}T09:00:00Z")),
    )
    guest = await client.post(
        "/appointments",
        headers={"Content-Type": "application/vnd.slotwise+json"},
        content=json.dumps(guest_booking(provider["id"], f"{DAY}T10:00:00Z")),
    )
    assert (signed.status_code, guest.status_code) == (201, 201), (signed.text, guest.text)
    assert solved == []


async def test_every_other_request_goes_through_fastapi(
    client: httpx.AsyncClient, clock: Clock, solved: list[str]
) -> None:
    provider, customer = await _provider_and_client(client, solved)
    keyed = await client.post(
        "/appointments/",
        headers={**customer.headers, "Idempotency-Key": "route-test-1"},
        json=_booking(provider["id"], f"{DAY}T09:00:00Z"),
    )
    assert keyed.status_code == 201, keyed.text
    invalid = await client.post(
        "/appointments/", headers=customer.headers, json={"provider_id": provider["id"]}
    )
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "validation_error"
    assert {tuple(e["loc"]) for e in invalid.json()["details"]} >= {("body", "start_datetime")}
    broken = await client.post(
        "/appointments/",
        headers={**customer.headers, "Content-Type": "application/json"},
        content=b'{"provider_id": ',
    )
    assert broken.status_code == 422
    assert broken.json()["details"][0]["type"] == "json_invalid"
    # FastAPI's handler refuses a body that is not JSON before it solves anything.
    assert solved == ["/api/v1/appointments/"] * 2


async def test_a_bad_token_is_refused_on_the_short_path(
    client: httpx.AsyncClient, clock: Clock, solved: list[str]
) -> None:
    _, provider = await bookable_provider(client)
    solved.clear()
    response = await client.post(
        "/appointments/",
        headers={"Authorization": "Bearer not-a-token"},
        json=_booking(provider["id"], f"{DAY}T09:00:00Z"),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert solved == []


async def test_both_paths_give_the_same_answer(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, solved: list[str]
) -> None:
    """Two providers set up alike, the same booking with each: one served on the short
    path, one by FastAPI (an override it does not know sends every request there)."""
    answers = []
    for overridden in (False, True):
        provider, customer = await _provider_and_client(client, solved)
        if overridden:
            app.dependency_overrides[get_app_state] = get_app_state
        try:
            response = await client.post(
                "/appointments/",
                headers=customer.headers,
                json=_booking(provider["id"], f"{DAY}T09:00:00Z"),
            )
        finally:
            app.dependency_overrides.pop(get_app_state, None)
        assert response.status_code == 201, response.text
        assert len(solved) == overridden
        body = response.json()
        for field in ("id", "provider_id", "client_id", "created_at", "updated_at"):
            body.pop(field)
        for entry in body["history"]:
            entry.pop("actor_id", None)
            entry.pop("at", None)
        answers.append(body)
    assert answers[0] == answers[1]


async def test_an_async_clock_override_is_awaited_on_the_short_path(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock, solved: list[str]
) -> None:
    """FastAPI accepts an async override of the clock; so does the short path."""

    async def later() -> datetime:
        return clock.now + timedelta(minutes=1)

    provider, customer = await _provider_and_client(client, solved)
    app.dependency_overrides[get_now] = later
    response = await client.post(
        "/appointments/",
        headers=customer.headers,
        json=_booking(provider["id"], f"{DAY}T09:00:00Z"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["created_at"].startswith(
        (clock.now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    )
    assert solved == []


async def test_a_streamed_body_over_the_limit_is_413_on_the_short_path(
    client: httpx.AsyncClient, settings: Settings, solved: list[str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"notes": "'
        for _ in range(settings.max_body_bytes // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    response = await client.post(
        "/appointments/", headers={"Content-Type": "application/json"}, content=chunks()
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert solved == []


async def test_a_client_gone_before_its_body_gets_fastapis_answer(
    app: FastAPI, solved: list[str]
) -> None:
    """No 500 and no error log for a client that left: FastAPI's handler answers it."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/appointments/",
        "raw_path": b"/api/v1/appointments/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert solved == []  # refused while reading the body, before any dependency

"""POST /appointments/ is an ordinary FastAPI route: every dependency (the route's own, its
router's, the application's) and every middleware runs on every request it serves, whatever
the way (signed in or as a guest, with an Idempotency-Key or not, any JSON media type, a
refusal); and its answers to odd requests are FastAPI's own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotwise import main
from slotwise.booking.router import booking_router
from slotwise.config import Settings
from slotwise.state import get_now
from tests.factories import Clock, bookable_provider, guest_booking, signed_in

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now


async def _app_level(request: Request) -> None:
    request.app.state.ran.append(("app", request.url.path))


async def _router_level(request: Request) -> None:
    request.app.state.ran.append(("router", request.url.path))


class _Recording:
    """A middleware added after the application's own: it notes every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"].state.ran.append(("middleware", scope["path"]))
        await self.app(scope, receive, send)


class _WithDependencies(FastAPI):
    """The application as create_app builds it, had it been given an app-level dependency
    (``FastAPI(dependencies=[...])``, i.e. ``app.router.dependencies``) and the booking
    router one of its own when included."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs, dependencies=[Depends(_app_level)])
        self.state.ran = []

    def include_router(self, router: APIRouter, **kwargs: Any) -> None:
        if router is booking_router:
            kwargs["dependencies"] = [Depends(_router_level)]
        super().include_router(router, **kwargs)


@pytest.fixture
async def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    """This module's application: create_app's, with the dependencies and middleware above."""
    monkeypatch.setattr(main, "FastAPI", _WithDependencies)
    application = main.create_app(settings)
    application.add_middleware(_Recording)
    yield application
    await application.state.slotwise.aclose()


def _booking(provider_id: str, start: str) -> dict[str, object]:
    return {"provider_id": provider_id, "start_datetime": start, "notes": "Lesson"}


async def test_every_dependency_and_middleware_runs_on_every_way_of_booking(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    assert ("app", "/api/v1/auth/login") in app.state.ran  # the app-level one runs everywhere
    app.state.ran.clear()

    async def through(
        way: str, body: object, headers: dict[str, str], expected: int, path: str = "/appointments/"
    ) -> None:
        headers = {"Content-Type": "application/json", **headers}
        response = await client.post(path, headers=headers, content=json.dumps(body))
        assert response.status_code == expected, (way, response.text)
        served = "/api/v1" + path
        assert app.state.ran == [("middleware", served), ("app", served), ("router", served)], way
        app.state.ran.clear()

    def signed(hour: str) -> dict[str, object]:
        return _booking(provider["id"], f"{DAY}T{hour}:00Z")

    def guest(hour: str) -> dict[str, object]:
        return guest_booking(provider["id"], f"{DAY}T{hour}:00Z")

    charset = {"Content-Type": "application/json; charset=utf-8"}
    vendor = {"Content-Type": "application/vnd.slotwise+json"}
    key = {"Idempotency-Key": "route-test-1"}
    await through("signed in", signed("09:00"), customer.headers, 201)
    await through("a charset", signed("10:00"), {**customer.headers, **charset}, 201)
    await through("a guest, +json, no slash", guest("11:00"), vendor, 201, "/appointments")
    await through("idempotent", signed("12:00"), {**customer.headers, **key}, 201)
    await through("the key again", signed("12:00"), {**customer.headers, **key}, 201)
    await through("a guest, idempotent", guest("13:00"), {"Idempotency-Key": "route-test-2"}, 201)
    await through("a slot taken", signed("09:00"), customer.headers, 409)
    await through("a bad token", signed("14:00"), {"Authorization": "Bearer not-a-token"}, 401)
    await through("a body that does not validate", {"notes": "x"}, customer.headers, 422)


async def test_a_body_that_does_not_validate_gets_fastapis_answer(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
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


async def test_a_bad_token_is_refused(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    response = await client.post(
        "/appointments/",
        headers={"Authorization": "Bearer not-a-token"},
        json=_booking(provider["id"], f"{DAY}T09:00:00Z"),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_an_async_clock_override_is_awaited(
    app: FastAPI, client: httpx.AsyncClient, clock: Clock
) -> None:
    """An async override of the clock is awaited, as FastAPI does for any dependency."""

    async def later() -> datetime:
        return clock.now + timedelta(minutes=1)

    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
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


async def test_a_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, settings: Settings
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


async def test_a_client_gone_before_its_body_gets_fastapis_answer(app: FastAPI) -> None:
    """No 500 and no error log for a client that left: FastAPI answers it while reading
    the body, before it solves any dependency."""
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
    assert app.state.ran == [("middleware", "/api/v1/appointments/")]  # no dependency ran


async def test_the_document_shows_the_token_it_reads(app: FastAPI) -> None:
    """The token's claims are one dependency that is also bearer's security scheme: the
    route still declares the scheme, and the 401 and 503 of every route reading a token."""
    document = app.openapi()
    operation = document["paths"]["/api/v1/appointments/"]["post"]
    assert operation["security"] == [{"OAuth2PasswordBearer": []}]
    assert {"401", "503"} <= operation["responses"].keys()
    assert list(document["components"]["securitySchemes"]) == ["OAuth2PasswordBearer"]

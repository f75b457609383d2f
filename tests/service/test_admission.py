"""Admission: at most so many requests at work in a worker, the others let in in the order
they came; a place held until the response starts, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotwise import admission
from slotwise.admission import AdmissionMiddleware, Turns
from slotwise.booking.queue import MAX_BATCH, WRITERS
from slotwise.config import Settings
from slotwise.main import create_app
from tests.servers import free_port

Gate = dict[str, asyncio.Event]


def _app(turns: Turns, gates: Gate, entered: list[str]) -> ASGIApp:
    """An app whose requests note their entry and then wait on their gate (by path)."""

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].strip("/")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        entered.append(name)
        if name.startswith("boom"):
            raise RuntimeError("a bug")
        if name.startswith("stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await gates[name].wait()
            await send({"type": "http.response.body", "body": body})
            return
        await gates.setdefault(name, asyncio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return AdmissionMiddleware(inner, turns=turns)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _request(
    app: ASGIApp,
    name: str,
    chunks: list[bytes] | None = None,
    paced: asyncio.Event | None = None,
    leaves: asyncio.Event | None = None,
) -> asyncio.Task[list[Message]]:
    """The request run as a task; its body sent in ``chunks``, the last once ``paced`` is
    set (a slow client); its client leaving once ``leaves`` is set (else it stays)."""
    parts = chunks or [b""]
    sent: list[Message] = []

    async def receive() -> Message:
        if not parts:
            await (leaves or asyncio.Event()).wait()
            return {"type": "http.disconnect"}
        part = parts.pop(0)
        if not parts and paced is not None:
            await paced.wait()
        return {"type": "http.request", "body": part, "more_body": bool(parts)}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> list[Message]:
        scope = {"type": "http", "method": "POST", "path": f"/{name}", "headers": []}
        await app(scope, receive, send)
        return sent

    return asyncio.create_task(run())


async def test_requests_past_the_limit_wait_and_go_in_in_the_order_they_came() -> None:
    turns, gates, entered = Turns(2), {}, []
    app = _app(turns, gates, entered)
    tasks = [_request(app, f"r{i}") for i in range(5)]
    await _settle()
    assert entered == ["r0", "r1"]
    assert (turns.at_work, turns.waiting) == (2, 3)

    gates["r1"].set()  # the second answers: the third goes in, not a later one
    await _settle()
    assert entered == ["r0", "r1", "r2"]
    gates["r0"].set()
    await _settle()
    assert entered == ["r0", "r1", "r2", "r3"]
    for name in ("r2", "r3", "r4"):
        gates.setdefault(name, asyncio.Event()).set()
    answers = await asyncio.gather(*tasks)
    assert entered == ["r0", "r1", "r2", "r3", "r4"]
    assert all(sent[0]["status"] == 200 for sent in answers)
    assert (turns.at_work, turns.waiting) == (0, 0)


async def test_a_stream_gives_its_place_up_when_its_response_starts() -> None:
    turns, entered = Turns(1), []
    gates = {"stream": asyncio.Event()}
    app = _app(turns, gates, entered)
    stream = _request(app, "stream")
    await _settle()
    after = _request(app, "after")
    await _settle()
    assert entered == ["stream", "after"]  # in while the stream still streams
    gates.setdefault("after", asyncio.Event()).set()
    assert (await after)[0]["status"] == 200
    gates["stream"].set()
    await stream
    assert turns.at_work == 0


async def test_a_request_that_fails_gives_its_place_up() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    failing = _request(app, "boom")
    waiting = _request(app, "next")
    await _settle()
    with pytest.raises(RuntimeError):
        await failing
    await _settle()
    assert entered == ["boom", "next"]
    gates["next"].set()
    await waiting
    assert turns.at_work == 0


async def test_a_request_cancelled_in_line_takes_no_place_with_it() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    first = _request(app, "first")
    gone = _request(app, "gone")
    await _settle()
    gone.cancel()  # cancelled while it waited (the server shutting down)
    await _settle()
    gates["first"].set()
    await first
    assert (turns.at_work, turns.waiting) == (0, 0)
    third = _request(app, "third")
    await _settle()
    assert entered == ["first", "third"]
    gates["third"].set()
    await third


async def test_a_request_given_its_place_as_it_is_cancelled_passes_it_on() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    first = _request(app, "first")
    gone = _request(app, "gone")
    later = _request(app, "later")
    await _settle()
    gates["first"].set()
    await asyncio.sleep(0)  # the first answered: its place is handed to "gone" ...
    assert (turns.at_work, turns.waiting) == (1, 1)  # "gone" holds it, "later" waits
    assert entered == ["first"]
    gone.cancel()  # ... cancelled before it could go in
    await first
    await _settle()
    assert entered == ["first", "later"]
    gates["later"].set()
    await later
    assert turns.at_work == 0


async def test_a_request_that_outstays_its_patience_stops_counting() -> None:
    turns, gates, entered = Turns(1, patience=0.05), {}, []
    app = _app(turns, gates, entered)
    stuck = _request(app, "stuck")  # held up elsewhere: a slow feed, a lock
    waiting = _request(app, "waiting")
    await _settle()
    assert entered == ["stuck"]
    await asyncio.sleep(0.02)
    assert entered == ["stuck"]  # still within its patience
    await asyncio.sleep(0.08)
    assert entered == ["stuck", "waiting"]
    assert turns.at_work == 1  # the one let in; the stuck one no longer counts
    gates["waiting"].set()
    await waiting
    gates["stuck"].set()
    await stuck  # its leaving gives no place twice
    assert (turns.at_work, turns.waiting) == (0, 0)


async def test_a_client_sending_its_body_slowly_holds_no_place() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    paced = asyncio.Event()
    slow = _request(app, "slow", chunks=[b'{"a":', b"1}"], paced=paced)
    quick = _request(app, "quick", chunks=[b"{}"])
    await _settle()
    assert entered == ["quick"]
    assert turns.waiting == 0
    paced.set()  # the rest of the slow body arrives: it waits its turn
    await _settle()
    assert turns.waiting == 1
    gates["quick"].set()
    await quick
    await _settle()
    gates["slow"].set()
    sent = await slow
    assert sent[1]["body"] == b'{"a":1}'  # read before its turn, given to the app whole


async def test_a_request_whose_client_leaves_while_it_waits_is_not_worked_on() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    first = _request(app, "first")
    leaves = asyncio.Event()
    gone = _request(app, "gone", leaves=leaves)
    later = _request(app, "later")
    await _settle()
    assert turns.waiting == 2
    leaves.set()  # its client gives up
    sent = await asyncio.wait_for(gone, 1)
    assert sent[0]["status"] == 499  # logged as the client's leaving; nobody hears it
    assert turns.waiting == 1
    gates["first"].set()
    await first
    await _settle()
    assert entered == ["first", "later"]  # "gone" never went in
    gates["later"].set()
    await later
    assert (turns.at_work, turns.waiting) == (0, 0)


async def _run_alone(app: ASGIApp, name: str, messages: list[Message | Exception]) -> None:
    async def receive() -> Message:
        item = messages.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def send(message: Message) -> None:
        pass

    await app({"type": "http", "method": "POST", "path": f"/{name}", "headers": []}, receive, send)


async def test_a_request_whose_client_left_while_sending_does_not_wait() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    first = _request(app, "first")
    await _settle()
    left = {"type": "http.disconnect"}
    gone = asyncio.create_task(
        _run_alone(app, "gone", [{"type": "http.request", "body": b"{", "more_body": True}, left])
    )
    await _settle()
    assert entered == ["first", "gone"]  # not in line behind the first: the app hears it left
    assert turns.waiting == 0
    gates["gone"].set()
    await gone
    gates["first"].set()
    await first
    assert turns.at_work == 0


async def test_a_refused_body_is_answered_without_waiting_and_raised_where_the_app_reads() -> None:
    turns, gates, entered = Turns(1), {}, []
    app = _app(turns, gates, entered)
    first = _request(app, "first")
    await _settle()
    too_large = RuntimeError("413: the body guard's refusal")
    chunk = {"type": "http.request", "body": b"{", "more_body": True}
    with pytest.raises(RuntimeError, match="413"):
        await asyncio.wait_for(_run_alone(app, "big", [chunk, too_large]), 1)
    assert (turns.at_work, turns.waiting) == (1, 0)  # only the first's place
    gates["first"].set()
    await first


async def test_no_limit_lets_every_request_in() -> None:
    turns, gates, entered = Turns(0), {}, []
    app = _app(turns, gates, entered)
    tasks = [_request(app, f"r{i}") for i in range(50)]
    await _settle()
    assert len(entered) == 50
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)


@pytest.fixture
async def one_at_a_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, asyncio.Event]]:
    """The application with one place, and a route of its own that waits on an event. The
    held request keeps its place however slow the machine is (a second's patience ran out
    on a loaded one, and the next was let in)."""
    monkeypatch.setattr(admission, "PATIENCE_SECONDS", 60.0)
    release = asyncio.Event()
    application = create_app(settings.model_copy(update={"admission_limit": 1}))

    async def hold() -> dict[str, str]:
        await release.wait()
        return {"held": "yes"}

    application.add_api_route("/api/v1/hold", hold)
    yield application, release
    await application.state.slotwise.aclose()


async def test_the_application_admits_by_its_setting_and_reports_who_waits(
    one_at_a_time: tuple[FastAPI, asyncio.Event],
) -> None:
    application, release = one_at_a_time
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        held = asyncio.create_task(client.get("/api/v1/hold"))
        await _settle()
        health = asyncio.create_task(client.get("/health"))
        await _settle()
        assert not health.done()  # its turn comes after the held request's
        metrics = application.state.metrics
        assert metrics.registry.get_sample_value("slotwise_http_requests_waiting") == 1.0
        release.set()
        assert (await held).json() == {"held": "yes"}
        assert (await health).status_code == 200
        assert metrics.registry.get_sample_value("slotwise_http_requests_waiting") == 0.0


def test_the_default_limit_admits_two_full_batches_of_bookings() -> None:
    assert Settings(_env_file=None).admission_limit == MAX_BATCH * WRITERS


async def test_under_uvicorn_a_client_that_leaves_in_line_is_not_worked_on() -> None:
    # The app's own wait for disconnection is uvicorn's: its receive gives
    # http.disconnect once the client closes, and never cancels the request.
    turns, gates, entered = Turns(1), {}, []
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _app(turns, gates, entered),
            host="127.0.0.1",
            port=port,
            log_level="critical",
            timeout_graceful_shutdown=1,  # a request still in line ends with the test
        )
    )
    serving = asyncio.create_task(server.serve())
    request = "POST /{} HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{{}}"
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        _reader, holding = await asyncio.open_connection("127.0.0.1", port)
        holding.write(request.format("first").encode())
        for _ in range(200):
            if entered:
                break
            await asyncio.sleep(0.01)
        _reader, leaving = await asyncio.open_connection("127.0.0.1", port)
        leaving.write(request.format("gone").encode())
        for _ in range(200):
            if turns.waiting:
                break
            await asyncio.sleep(0.01)
        assert turns.waiting == 1
        leaving.close()  # the client gives up while in line
        for _ in range(200):
            if not turns.waiting:
                break
            await asyncio.sleep(0.01)
        assert turns.waiting == 0
        gates["first"].set()
        holding.close()
        await asyncio.sleep(0.1)
        assert entered == ["first"]
        assert turns.at_work == 0
    finally:
        server.should_exit = True
        await serving

"""Live slot listings (`GET /providers/{ref}/slots/stream`, Server-Sent Events), served by
real uvicorn servers: the listing first, then again at each change, from this worker or
another process; `Last-Event-ID`; heartbeats; the errors before a stream starts; the end of
a stream when the provider goes or the server stops. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from slotwise.config import Settings
from tests.conftest import TEST_SECRET
from tests.factories import bookable_provider, signed_in, signed_in_admin
from tests.servers import free_port, wait_until_up

pytestmark = pytest.mark.long

# Real servers run on the real clock: a day ahead, whatever today is.
DAY = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def served(settings: Settings, tmp_path: Path, name: str, **env: str) -> Iterator[Served]:
    """``slotwise.main:app_factory`` in a uvicorn process of its own, on the test's
    database."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    environment.update(
        SLOTWISE_DATABASE_URL=settings.database_url,
        SLOTWISE_SECRET_KEY=TEST_SECRET,
        SLOTWISE_ENV="test",
        SLOTWISE_ARGON2_TIME_COST="1",
        SLOTWISE_ARGON2_MEMORY_KIB="1024",
        SLOTWISE_RATE_LIMIT_ENABLED="false",
        SLOTWISE_LOG_LEVEL="WARNING",
        **env,
    )
    command = [sys.executable, "-m", "uvicorn", "slotwise.main:app_factory", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=tmp_path,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, name=name)
        yield Served(base, process, log)
    except BaseException:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class Event:
    event: str
    id: str | None
    data: Any
    received_at: float


class Stream:
    """A stream's events as they come, read in the background."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.comments = 0
        self.ended_cleanly = False  # the server ended the body (not a connection cut)
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if not line:
                    if "data" in fields:
                        data = json.loads(fields["data"])
                        event = Event(
                            fields.get("event", "message"),
                            fields.get("id"),
                            data,
                            time.monotonic(),
                        )
                        await self.events.put(event)
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    key, _, value = line.partition(":")
                    fields[key] = value.removeprefix(" ")
            self.ended_cleanly = True
        except httpx.HTTPError:
            pass
        await self.events.put(None)  # the stream ended

    async def next(self, seconds: float = 5.0) -> Event | None:
        async with asyncio.timeout(seconds):
            return await self.events.get()

    async def quiet_for(self, seconds: float) -> bool:
        """No event for ``seconds``."""
        try:
            await self.next(seconds)
        except TimeoutError:
            return True
        return False

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, handle: object, **headers: str
) -> AsyncIterator[Stream]:
    request = client.build_request(
        "GET", f"/providers/{handle}/slots/stream", params={"date": DAY}, headers=headers
    )
    response = await client.send(request, stream=True)
    assert response.status_code == 200, (await response.aread()).decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    opened = Stream(response)
    try:
        yield opened
    finally:
        await opened.aclose()
        await response.aclose()


def hours(event: Event | None) -> list[str]:
    assert event is not None, "the stream ended"
    assert event.event == "slots", event
    return [slot["start_at"][11:16] for slot in event.data["slots"]]


async def book(client: httpx.AsyncClient, profile: dict[str, Any], at: str) -> dict[str, Any]:
    booker = await signed_in(client)
    response = await client.post(
        "/appointments/",
        headers=booker.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T{at}:00Z"},
    )
    assert response.status_code == 201, response.text
    return {"id": response.json()["id"], "headers": booker.headers}


def api(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=10)


HOURS = [f"{hour:02d}:00" for hour in range(9, 17)]


async def test_a_booking_on_another_process_reaches_a_subscriber_within_a_second(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        served(settings, tmp_path, "first") as first,
        served(settings, tmp_path, "second") as second,
    ):
        async with api(first.base) as watching, api(second.base) as booking:
            _account, profile = await bookable_provider(booking, session_duration_minutes=60)
            async with stream(watching, profile["public_handle"]) as live:
                assert hours(await live.next()) == HOURS
                booked_at = time.monotonic()
                taken = await book(booking, profile, "11:00")
                update = await live.next(2)
                assert hours(update) == [hour for hour in HOURS if hour != "11:00"]
                assert update is not None
                assert update.received_at - booked_at < 1.0
                # A cancellation on the other process puts the slot back.
                cancelled = await booking.post(
                    f"/appointments/{taken['id']}/cancel", headers=taken["headers"], json={}
                )
                assert cancelled.status_code == 200, cancelled.text
                assert hours(await live.next(2)) == HOURS


async def test_the_listing_comes_first_then_each_change_on_this_worker(
    settings: Settings, tmp_path: Path
) -> None:
    with served(settings, tmp_path, "server") as server:
        async with api(server.base) as client:
            account, profile = await bookable_provider(client, session_duration_minutes=60)
            async with stream(client, profile["public_handle"]) as live:
                first = await live.next()
                assert hours(first) == HOURS
                assert first is not None
                assert first.id
                await book(client, profile, "09:00")
                assert hours(await live.next()) == HOURS[1:]
                # A change to the hours reaches it too (a day off: nothing open).
                off = await client.post(
                    f"/providers/{profile['id']}/date-overrides",
                    headers=account.headers,
                    json={"date": DAY, "kind": "unavailable"},
                )
                assert off.status_code == 201, off.text
                assert hours(await live.next()) == []
                # A change that moves nothing sends nothing.
                await client.put(
                    "/providers/me", headers=account.headers, json={"bio": "Still off that day"}
                )
                assert await live.quiet_for(1.0)


async def test_reconnecting_with_the_last_event_id_sends_only_what_changed(
    settings: Settings, tmp_path: Path
) -> None:
    with served(settings, tmp_path, "server") as server:
        async with api(server.base) as client:
            _account, profile = await bookable_provider(client, session_duration_minutes=60)
            handle = profile["public_handle"]
            async with stream(client, handle) as live:
                seen = await live.next()
            assert seen is not None
            assert seen.id
            # Back with the listing it has: nothing is sent until the listing changes.
            async with stream(client, handle, **{"Last-Event-ID": seen.id}) as again:
                assert await again.quiet_for(1.0)
                await book(client, profile, "10:00")
                changed = await again.next()
                assert hours(changed) == [hour for hour in HOURS if hour != "10:00"]
            # Back after missing that change: the listing as it is now, at once.
            async with stream(client, handle, **{"Last-Event-ID": seen.id}) as late:
                assert hours(await late.next(2)) == [hour for hour in HOURS if hour != "10:00"]


async def test_heartbeats_keep_a_quiet_stream_alive(settings: Settings, tmp_path: Path) -> None:
    with served(settings, tmp_path, "server", SLOTWISE_SLOT_STREAM_PING_SECONDS="0.3") as server:
        async with api(server.base) as client:
            _account, profile = await bookable_provider(client, session_duration_minutes=60)
            async with stream(client, profile["public_handle"]) as live:
                await live.next()
                await asyncio.sleep(1.2)
                assert live.comments >= 2


async def test_a_provider_that_can_no_longer_be_listed_ends_the_stream(
    settings: Settings, tmp_path: Path
) -> None:
    with served(settings, tmp_path, "server") as server:
        async with api(server.base) as client:
            account, profile = await bookable_provider(client, session_duration_minutes=60)
            admin = await signed_in_admin(client, settings)
            async with stream(client, profile["public_handle"]) as live:
                await live.next()
                blocked = await client.patch(
                    f"/users/{account.id}", headers=admin.headers, json={"is_blocked": True}
                )
                assert blocked.status_code == 200, blocked.text
                gone = await live.next()
                assert gone is not None
                assert gone.event == "gone"
                assert gone.data["code"] == "provider_not_found"
                assert await live.next() is None  # and the stream ends
                assert live.ended_cleanly


async def test_errors_come_before_the_stream_starts(settings: Settings, tmp_path: Path) -> None:
    with served(settings, tmp_path, "server", SLOTWISE_SLOT_STREAMS_MAX="1") as server:
        async with api(server.base) as client:
            _account, profile = await bookable_provider(client, session_duration_minutes=60)
            path = f"/providers/{profile['public_handle']}/slots/stream"
            unknown = await client.get("/providers/nobody-here/slots/stream", params={"date": DAY})
            assert unknown.status_code == 404
            assert unknown.json()["code"] == "provider_not_found"
            bad = await client.get(path, params={"date": "tomorrow"})
            assert bad.status_code == 422
            assert bad.json()["code"] == "validation_error"
            async with stream(client, profile["public_handle"]) as live:
                await live.next()
                full = await client.get(path, params={"date": DAY})
                assert full.status_code == 503
                assert full.json()["code"] == "too_many_streams"
            # The stream closed: its place is free again (once the server has seen it go).
            for _ in range(50):
                request = client.build_request("GET", path, params={"date": DAY})
                again = await client.send(request, stream=True)
                await again.aclose()
                if again.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert again.status_code == 200


async def test_a_stopping_server_ends_its_streams(settings: Settings, tmp_path: Path) -> None:
    with served(settings, tmp_path, "server") as server:
        async with api(server.base) as client:
            _account, profile = await bookable_provider(client, session_duration_minutes=60)
            async with stream(client, profile["public_handle"]) as live:
                await live.next()
                stopping_at = time.monotonic()
                os.killpg(server.process.pid, signal.SIGTERM)
                assert await live.next(10) is None  # the stream ended, not cut by a timeout
                assert live.ended_cleanly
                await asyncio.to_thread(server.process.wait, 10)
                # uvicorn shuts down gracefully, then raises the signal it caught again.
                assert server.process.returncode in (0, -signal.SIGTERM)
                assert time.monotonic() - stopping_at < 10
                assert "Traceback" not in server.log.read_text()


async def test_a_stream_ends_after_its_lifetime_and_resumes_where_it_was(
    settings: Settings, tmp_path: Path
) -> None:
    """Long-lived connections end now and then (`SLOTWISE_SLOT_STREAM_MAX_SECONDS`), so they
    rebalance across workers; the client comes back with the last event's id and misses
    nothing."""
    with served(settings, tmp_path, "server", SLOTWISE_SLOT_STREAM_MAX_SECONDS="1") as server:
        async with api(server.base) as client:
            _account, profile = await bookable_provider(client, session_duration_minutes=60)
            async with stream(client, profile["public_handle"]) as live:
                first = await live.next()
                opened_at = time.monotonic()
                assert await live.next(5) is None
                assert live.ended_cleanly
                assert 0.8 < time.monotonic() - opened_at < 3
            assert first is not None
            assert first.id
            async with stream(
                client, profile["public_handle"], **{"Last-Event-ID": first.id}
            ) as resumed:
                await book(client, profile, "12:00")
                assert hours(await resumed.next()) == [h for h in HOURS if h != "12:00"]

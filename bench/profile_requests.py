"""Where a request's time goes: `uv run python bench/profile_requests.py SCENARIO [--db ...]`.

Not a benchmark with a target: a tool for acting on a missed one. It seeds the same data as
the benchmark, builds the app in-process (`create_app`, the same settings as the served
one) and calls it as an ASGI app directly, without uvicorn or sockets:

1. N requests, `--concurrency` at a time, unprofiled: wall time and this process's CPU
   time per request, the SQL statements each runs (counted with engine events) and the
   time spent inside them. `--repeat K` runs them K times and also prints the least and
   the median CPU a request: on a machine whose speed drifts, the least of several runs
   is the steadiest figure to compare code by (old and new still taking turns).
2. The same N under cProfile (standard library, timing CPU: waits on the database are not
   counted): own time summed by layer (package), then the top functions by own time
   (`--dump FILE` keeps the stats for pstats). cProfile inflates call-heavy code, so read
   the layers as shares, and the plain timings of step 1 as the truth.

Scenarios: slots-date (one date), slots-window (31 days), booking (distinct free slots,
signed-in clients), contended (every client the same 10 slots: 10 bookings, the rest 409),
cancel and reschedule (each request cancels, or moves to the free slot after it, one of the
client's own bookings, booked through the app beforehand), health (GET /health), teams
(round-robin team bookings, bench_teams' load: two clients on each team's same times).

    uv run python bench/profile_requests.py booking --db postgresql --concurrency 20
    uv run python bench/profile_requests.py slots-date --slot-cache-mb 0   # computed afresh
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import json
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import bench_booking
import bench_slots
import bench_teams
import loadgen
from fastapi import FastAPI
from sqlalchemy import event
from support import DATABASES, SECRET_KEY, SeededProvider, bench_database

from slotwise.config import Settings
from slotwise.main import create_app

Call = tuple[str, str, str, bytes, dict[str, str]]  # method, path, query, body, headers

LAYERS = (
    ("slotwise/scheduling", "slotwise core (scheduling)"),
    ("slotwise/", "slotwise (routers, services, repositories)"),
    ("sqlalchemy/orm", "SQLAlchemy ORM"),
    ("sqlalchemy/sql", "SQLAlchemy SQL building and compiling"),
    ("sqlalchemy/engine", "SQLAlchemy engine and results"),
    ("sqlalchemy/dialects", "SQLAlchemy dialect adapters"),
    ("sqlalchemy", "SQLAlchemy other (pool, greenlet bridge, events)"),
    ("asyncpg", "asyncpg"),
    ("aiosqlite", "aiosqlite (thread hand-off)"),
    ("sqlite3", "sqlite3"),
    ("fastapi", "FastAPI (routing, dependencies, validation)"),
    ("starlette", "Starlette"),
    ("pydantic", "pydantic"),
    ("anyio", "anyio (threadpool for sync dependencies)"),
    ("structlog", "structlog"),
    ("prometheus_client", "prometheus_client"),
    ("jwt", "PyJWT"),
    ("greenlet", "greenlet"),
    ("threading", "threads (locks, conditions)"),
    ("asyncio", "asyncio"),
)


def layer_of(filename: str) -> str:
    for needle, name in LAYERS:
        if needle in filename:
            return name
    if filename == "~":
        return "built-ins (C functions: datetime, dict, str, socket...)"
    return "other Python (stdlib)"


async def call(app: FastAPI, request: Call) -> tuple[int, bytes]:
    method, path, query, body, headers = request
    raw_headers = [(b"host", b"bench")] + [
        (k.lower().encode(), v.encode()) for k, v in headers.items()
    ]
    if body:
        raw_headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    messages: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status = messages[0]["status"]
    payload = b"".join(m.get("body", b"") for m in messages[1:])
    return status, payload


def settings_for(url: str, slot_cache_mb: int | None = None) -> Settings:
    """The served app's settings, on this database (without rate limits)."""
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=SECRET_KEY,
        rate_limit_enabled=False,
        log_level="WARNING",
    )
    if slot_cache_mb is not None:
        settings = settings.model_copy(update={"slot_cache_mb": slot_cache_mb})
    return settings


@asynccontextmanager
async def scenario(
    name: str, url: str, *, callers: int, per_caller: int
) -> AsyncIterator[Callable[[], Iterator[Call]]]:
    """Seed the database; yield a factory of request streams (one per concurrent caller,
    ``callers`` of them making ``per_caller`` requests each)."""
    if name.startswith("slots") or name in ("health", "trivial"):
        seeded = await bench_slots.seed_base(url)
        await bench_slots.top_up(url, seeded, 10_000, postgres="postgresql" in url)
        path = f"/api/v1/providers/{seeded.main.handle}/slots"
        if name == "slots-date":
            queries = [f"date={seeded.first_date + timedelta(days=d)}" for d in range(31)]
        elif name == "slots-window":
            queries = [f"from={seeded.first_date}&to={seeded.last_date}"]
        elif name == "trivial":  # no database, no Redis: the framework's own cost
            path, queries = "/health/redis", [""]
        else:
            path, queries = "/health", [""]
        yield lambda: itertools.cycle([("GET", path, q, b"", {}) for q in queries])
        return
    if name == "teams":  # bench_teams' load: clients 2k and 2k+1 book team k's same times
        teams = await bench_teams.seed(url)
        tokens = await bench_booking.add_clients(url, prefix="bench-team-client")
        team_starts = bench_teams.starts(teams[0].members[0].zone, _first_date(teams), 60)

        def team_booking(team: bench_teams.SeededTeam, start: datetime, token: str) -> Call:
            body = {"service_id": team.service_id, "start_datetime": start.isoformat()}
            headers = {"authorization": f"Bearer {token}"}
            path = f"/api/v1/teams/{team.handle}/appointments"
            return ("POST", path, "", json.dumps(body).encode(), headers)

        team_streams = iter(
            [
                iter([team_booking(teams[i // 2], start, token) for start in team_starts])
                for i, token in enumerate(tokens)
            ]
        )
        yield lambda: next(team_streams)
        return
    providers = await bench_booking.seed(url)
    access_tokens = await bench_booking.add_clients(url)
    first_date = datetime.now(providers[0].zone).date() + timedelta(days=2)
    if name in ("cancel", "reschedule"):
        changes = await _changes(name, url, providers, access_tokens, callers, per_caller)
        yield lambda: next(changes)
        return

    def booking(provider: SeededProvider, start: datetime, token: str) -> Call:
        body = {"provider_id": str(provider.id), "start_datetime": start.isoformat()}
        headers = {"authorization": f"Bearer {token}"}
        return ("POST", "/api/v1/appointments/", "", json.dumps(body).encode(), headers)

    if name == "contended":  # every client tries the first provider's same 10 slots, over and over
        contested = bench_booking.slot_starts(providers[0], first_date, 1)[:10]
        streams = iter(
            [
                itertools.cycle([booking(providers[0], start, token) for start in contested])
                for token in access_tokens
            ]
        )
    else:  # client i books provider i's free slots in time order
        streams = iter(
            [
                iter(
                    [
                        booking(provider, start, token)
                        for start in bench_booking.slot_starts(provider, first_date, 90)
                    ]
                )
                for provider, token in zip(providers, access_tokens, strict=True)
            ]
        )
    yield lambda: next(streams)


def _first_date(teams: list[bench_teams.SeededTeam]) -> Any:
    return datetime.now(teams[0].members[0].zone).date() + timedelta(days=2)


async def _changes(
    name: str,
    url: str,
    providers: list[SeededProvider],
    access_tokens: list[str],
    callers: int,
    per_caller: int,
) -> Iterator[Iterator[Call]]:
    """Each caller's client books ``per_caller`` slots on the hour through the app (so each
    booking has its history and messages as served), then cancels each, or moves each to the
    free half hour after it, one request per booking."""
    first_date = datetime.now(providers[0].zone).date() + timedelta(days=2)
    days = -(-per_caller // (bench_booking.SLOTS_PER_DAY // 2))
    booker = create_app(settings_for(url))

    async def book_all(provider: SeededProvider, token: str) -> list[tuple[str, datetime]]:
        starts = bench_booking.slot_starts(provider, first_date, days)[::2][:per_caller]
        headers = {"authorization": f"Bearer {token}"}
        booked = []
        for start in starts:
            body = {"provider_id": str(provider.id), "start_datetime": start.isoformat()}
            request = ("POST", "/api/v1/appointments/", "", json.dumps(body).encode(), headers)
            status, payload = await call(booker, request)
            assert status == 201, payload
            booked.append((json.loads(payload)["id"], start))
        return booked

    pairs = list(zip(providers, access_tokens, strict=True))[:callers]
    plans = await asyncio.gather(*(book_all(provider, token) for provider, token in pairs))
    await booker.state.slotwise.db.dispose()

    def requests(booked: list[tuple[str, datetime]], token: str) -> Iterator[Call]:
        headers = {"authorization": f"Bearer {token}"}
        for appointment_id, start in booked:
            path = f"/api/v1/appointments/{appointment_id}/{name}"
            body: dict[str, str] = {}
            if name == "reschedule":
                body = {"new_start_time": (start + timedelta(minutes=30)).isoformat()}
            yield ("POST", path, "", json.dumps(body).encode(), headers)

    return iter([requests(booked, token) for booked, (_, token) in zip(plans, pairs, strict=True)])


async def drive(
    app: FastAPI, streams: list[Iterator[Call]], total: int
) -> tuple[float, float, Counter[int]]:
    """Wall seconds, this process's CPU seconds, statuses."""
    statuses: Counter[int] = Counter()
    per_caller = total // len(streams)

    async def caller(stream: Iterator[Call]) -> None:
        for request in itertools.islice(stream, per_caller):
            status, body = await call(app, request)
            statuses[status] += 1
            if status >= 400 and statuses[status] <= 2:
                print(f"   {status}: {body[:200]!r}")

    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.gather(*(caller(stream) for stream in streams))
    return time.perf_counter() - started, time.process_time() - cpu_started, statuses


async def profile(
    name: str,
    url: str,
    *,
    requests: int,
    concurrency: int,
    top: int,
    dump: str | None,
    slot_cache_mb: int | None,
    repeat: int = 1,
) -> None:
    warmup = max(concurrency * 5, 20)
    # Each caller's share of the warm-up and of the measured runs (``drive``): step 1's
    # ``repeat`` and the profiled one.
    per_caller = warmup // concurrency + (repeat + 1) * (requests // concurrency)
    async with scenario(name, url, callers=concurrency, per_caller=per_caller) as make_stream:
        app = create_app(settings_for(url, slot_cache_mb))
        gc.freeze()  # as the served app's lifespan does at start-up
        engine = app.state.slotwise.db.engine.sync_engine
        sql = {"count": 0, "seconds": 0.0}
        kinds: Counter[str] = Counter()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            conn.info["bench_t0"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            sql["count"] += 1
            sql["seconds"] += time.perf_counter() - conn.info.pop("bench_t0")
            words = statement.split()
            table = words[words.index("FROM") + 1] if "FROM" in words else ""
            if words[0] in ("INSERT", "DELETE"):  # INSERT INTO t, DELETE FROM t
                table = words[2]
            elif words[0] == "UPDATE":
                table = words[1]
            kinds[f"{words[0]} {table}".strip()] += 1

        streams = [make_stream() for _ in range(concurrency)]
        await drive(app, streams, warmup)
        per_request: list[float] = []
        for _ in range(repeat):
            sql.update(count=0, seconds=0.0)
            kinds.clear()
            elapsed, cpu, statuses = await drive(app, streams, requests)
            per_request.append(cpu / sum(statuses.values()) * 1000)
        done = sum(statuses.values())
        print(
            f"{name} on {url.split(':')[0]}, {concurrency} at a time: {done} requests in "
            f"{elapsed:.2f} s = {done / elapsed:,.0f}/s, {elapsed / done * 1000 * concurrency:.2f} "
            f"ms each; statuses {dict(statuses)}"
        )
        print(f"this process's CPU: {cpu / done * 1000:.3f} ms per request (no HTTP parsing)")
        if repeat > 1:
            print(
                f"   over {repeat} runs: least {min(per_request):.3f} ms, median "
                f"{statistics.median(per_request):.3f} ms "
                f"({', '.join(f'{one:.3f}' for one in per_request)})"
            )
        print(
            f"SQL: {sql['count'] / done:.1f} statements per request, "
            f"{sql['seconds'] / done * 1000:.2f} ms per request inside them"
        )
        for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"   {n / done:5.2f} x {kind}")

        # CPU time: a request's waits on the database are not its cost.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        await drive(app, streams, requests)
        profiler.disable()
        await app.state.slotwise.db.dispose()

    stats = pstats.Stats(profiler)
    if dump:
        stats.dump_stats(dump)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    by_layer: Counter[str] = Counter()
    for (filename, _line, _func), entry in raw.items():
        by_layer[layer_of(filename)] += entry[2]
    print(f"\ncProfile own time by layer ({total:.2f} s profiled):")
    for layer, seconds in by_layer.most_common():
        print(f"  {seconds / total * 100:5.1f}%  {layer}")
    print(f"\ntop {top} functions by own time:")
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, func), entry in ranked:
        short = filename.split("site-packages/")[-1].split("src/")[-1]
        print(f"  {entry[2] / total * 100:5.1f}%  {entry[1]:>8} calls  {func}  ({short}:{line})")
    print(f"\ntop {top} slotwise functions by cumulative time (own time and callees):")
    ours = [item for item in raw.items() if "slotwise/" in item[0][0]]
    for (filename, line, func), entry in sorted(ours, key=lambda item: -item[1][3])[:top]:
        short = filename.split("src/")[-1]
        print(f"  {entry[3] / total * 100:5.1f}%  {entry[1]:>8} calls  {func}  ({short}:{line})")


def main() -> int:
    parser = argparse.ArgumentParser(description="Profile one kind of request in-process.")
    parser.add_argument(
        "scenario",
        choices=[
            "slots-date",
            "slots-window",
            "booking",
            "contended",
            "cancel",
            "reschedule",
            "health",
            "trivial",
            "teams",
        ],
    )
    parser.add_argument("--db", choices=DATABASES, default="sqlite")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--slot-cache-mb",
        type=int,
        help="the slot cache's size (0: off, every listing computed afresh); default as served",
    )
    parser.add_argument("--dump", help="also write the profile's stats to this file (pstats)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run step 1 this many times, and print the least and the median CPU a request",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat takes 1 or more")
    loadgen.install_uvloop()
    with bench_database(args.db, "profile") as url:
        asyncio.run(
            profile(
                args.scenario,
                url,
                requests=args.requests,
                concurrency=args.concurrency,
                top=args.top,
                dump=args.dump,
                slot_cache_mb=args.slot_cache_mb,
                repeat=args.repeat,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

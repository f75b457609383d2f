"""A small HTTP/1.1 keep-alive load client on asyncio streams (standard library only).

Each of N connections opens one socket with ``asyncio.open_connection`` and sends its
requests back to back on it (no pipelining: the next request leaves when the previous
response is read). Responses must carry ``Content-Length`` (uvicorn's always do). Every
request's latency, completion time and status are recorded; the figures are taken over the
requests completed inside the measurement window (after the warm-up, before the deadline).

Runs under uvloop when it is installed (it comes with ``uvicorn[standard]``).

While it measures, its own heap is frozen (``frozen_heap``): the benchmarks seed their data
in this process, and a full collection of what that left (some 150,000 objects, ~80 ms)
would pause every connection at once and be counted as the server's latency.

As a script:

    uv run python bench/loadgen.py http://127.0.0.1:8000/health -c 32 -d 5
    uv run python bench/loadgen.py --serve-static 8099   # a trivial server, for the ceiling

The static server answers every request with a fixed 2-byte body straight from an asyncio
protocol: against it, what is measured is the client's own ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

RequestSource = Callable[[int], Iterable[bytes]]  # connection index -> its requests


def build_request(
    method: str,
    path: str,
    *,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> bytes:
    """One request's bytes, ready to be written on a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def json_request(
    method: str, path: str, payload: object, *, headers: dict[str, str] | None = None
) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return build_request(method, path, headers=headers, body=body)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """The figures of one load run, over the measurement window."""

    label: str
    connections: int
    window_s: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    all_statuses: dict[str, int] = field(default_factory=dict)  # warm-up and tail included
    latencies_s: list[float] = field(default_factory=list, repr=False)  # sorted; not reported

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    def line(self) -> str:
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.label:<34} {self.connections:>3} conn  {self.rps:9,.0f} req/s  "
            f"p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  max {self.max_ms:7.1f} ms  "
            f"n={self.requests}  [{statuses}]" + (f"  errors={self.errors}" if self.errors else "")
        )

    def as_dict(self) -> dict[str, object]:
        figures = asdict(self)
        del figures["latencies_s"]
        return figures


def combine(results: list[LoadResult], label: str) -> LoadResult:
    """Several windows of the same load as one: their requests over their summed windows,
    percentiles over all their latencies."""
    latencies = sorted(latency for result in results for latency in result.latencies_s)
    window = sum(result.window_s for result in results)
    statuses: Counter[str] = Counter()
    all_statuses: Counter[str] = Counter()
    for result in results:
        statuses.update(result.statuses)
        all_statuses.update(result.all_statuses)
    return _figures(
        label,
        results[0].connections,
        window,
        latencies,
        statuses,
        all_statuses,
        errors=sum(result.errors for result in results),
        samples=[sample for result in results for sample in result.error_samples],
    )


def _figures(
    label: str,
    connections: int,
    window: float,
    latencies: list[float],
    statuses: Counter[str],
    all_statuses: Counter[str],
    *,
    errors: int,
    samples: list[str],
) -> LoadResult:
    """The figures of sorted latencies (seconds) over a window."""
    ms = 1000.0
    return LoadResult(
        label=label,
        connections=connections,
        window_s=round(window, 3),
        requests=len(latencies),
        rps=len(latencies) / window,
        p50_ms=percentile(latencies, 0.50) * ms,
        p95_ms=percentile(latencies, 0.95) * ms,
        p99_ms=percentile(latencies, 0.99) * ms,
        max_ms=(latencies[-1] if latencies else 0.0) * ms,
        statuses=dict(sorted(statuses.items())),
        errors=errors,
        error_samples=samples[:5],
        all_statuses=dict(sorted(all_statuses.items())),
        latencies_s=latencies,
    )


class _Recorder:
    def __init__(self) -> None:
        self.ends: list[float] = []
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.errors = 0
        self.error_samples: list[str] = []

    def sample(self, text: str) -> None:
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """Status, head and body of one response (Content-Length framing only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        if b"transfer-encoding: chunked" in lower:
            raise ValueError("chunked responses are not supported by this client")
        return status, head, b""
    end = lower.index(b"\r\n", at + 2)
    length = int(lower[at + 17 : end])
    body = await reader.readexactly(length) if length else b""
    return status, head, body


async def _connection(
    host: str,
    port: int,
    requests: Iterable[bytes],
    deadline: float,
    recorder: _Recorder,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    ends, latencies, statuses = recorder.ends, recorder.latencies, recorder.statuses
    try:
        for raw in requests:
            started = clock()
            if started >= deadline:
                break
            writer.write(raw)
            try:
                status, head, body = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                recorder.errors += 1
                recorder.sample(f"{exc.__class__.__name__}: {exc}")
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            finished = clock()
            ends.append(finished)
            latencies.append(finished - started)
            statuses.append(status)
            if status >= 400:
                recorder.sample(f"{status} {body[:200].decode('utf-8', 'replace')}")
            if b"\r\nconnection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


WINDOW_SCALE = 1.0
"""Every load's warm-up and window are multiplied by this. ``run_all.py --smoke`` (the CI
test, which proves that every benchmark runs, not its figures) sets a quarter."""


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The load client's own collector kept out of what it measures: what this process holds
    before (its requests, the seeding's modules and rows) is frozen (``gc.freeze``), so a
    full collection during the run walks only what the run makes, not some 150,000 objects
    (~80 ms, timed in the contended benchmark: every open request paused at once)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def run_load(
    url: str,
    source: RequestSource,
    *,
    connections: int,
    duration_s: float,
    warmup_s: float = 0.0,
    label: str = "",
) -> LoadResult:
    """Drive `connections` keep-alive connections for warm-up + duration, or until their
    request sources run out; figures cover requests completed after the warm-up."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    duration_s, warmup_s = duration_s * WINDOW_SCALE, warmup_s * WINDOW_SCALE
    recorders = [_Recorder() for _ in range(connections)]
    with frozen_heap():  # first: its collection is no part of the window
        started = time.perf_counter()
        window_start = started + warmup_s
        deadline = window_start + duration_s
        await asyncio.gather(
            *(
                _connection(host, port, source(index), deadline, recorders[index])
                for index in range(connections)
            )
        )
    stopped = time.perf_counter()
    window_end = min(deadline, stopped)
    latencies: list[float] = []
    status_counts: Counter[int] = Counter()
    all_counts: Counter[int] = Counter()
    errors = 0
    samples: list[str] = []
    for recorder in recorders:
        errors += recorder.errors
        samples.extend(recorder.error_samples)
        all_counts.update(recorder.statuses)
        for end, latency, status in zip(
            recorder.ends, recorder.latencies, recorder.statuses, strict=True
        ):
            if window_start <= end <= window_end:
                latencies.append(latency)
                status_counts[status] += 1
    latencies.sort()
    return _figures(
        label or url,
        connections,
        max(window_end - window_start, 1e-9),
        latencies,
        Counter({str(k): v for k, v in status_counts.items()}),
        Counter({str(k): v for k, v in all_counts.items()}),
        errors=errors,
        samples=samples,
    )


def resumable(source: RequestSource) -> RequestSource:
    """``source``, each connection's requests taken up where its last load left them (for a
    load run in several windows: no request is sent twice)."""
    iterators: dict[int, Iterator[bytes]] = {}

    def per_connection(index: int) -> Iterator[bytes]:
        if index not in iterators:
            iterators[index] = iter(source(index))
        return iterators[index]

    return per_connection


def repeat(raw: bytes, count: int | None = None) -> RequestSource:
    """The same request on every connection (`count` per connection, or forever)."""
    return lambda _index: itertools.repeat(raw) if count is None else itertools.repeat(raw, count)


def rotate(raws: list[bytes]) -> RequestSource:
    """Each connection cycles through `raws`, starting at its own offset."""

    def per_connection(index: int) -> Iterator[bytes]:
        offset = index % len(raws)
        return itertools.cycle(raws[offset:] + raws[:offset])

    return per_connection


async def fetch(
    url: str,
    method: str = "GET",
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body). For set-up calls and checks."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(
            build_request(method, path, headers=headers, body=body, content_type=content_type)
        )
        status, _head, payload = await _read_response(reader)
        return status, payload
    finally:
        writer.close()


# -- a trivial server, for measuring the client's own ceiling -----------------------------

_STATIC_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
    b"connection: keep-alive\r\n\r\nok"
)


class _StaticProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(_STATIC_RESPONSE)  # type: ignore[attr-defined]


async def serve_static(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_StaticProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    parser.add_argument("-m", "--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body", help="a JSON body")
    parser.add_argument("--serve-static", type=int, metavar="PORT", help="run the static server")
    args = parser.parse_args()
    loop_name = install_uvloop()
    if args.serve_static:
        asyncio.run(serve_static(args.serve_static))
        return 0
    if not args.url:
        parser.error("give a URL (or --serve-static PORT)")
    parts = urlsplit(args.url)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    raw = build_request(
        args.method,
        parts.path + (f"?{parts.query}" if parts.query else ""),
        headers=headers,
        body=args.body.encode() if args.body else None,
    )
    result = asyncio.run(
        run_load(
            args.url,
            repeat(raw),
            connections=args.connections,
            duration_s=args.duration,
            warmup_s=args.warmup,
        )
    )
    print(f"loadgen ({loop_name}), {args.duration:g} s after {args.warmup:g} s warm-up")
    print(result.line())
    for sample in result.error_samples:
        print("  sample:", sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmarks share: bench databases, uvicorn servers, seeding, figures.

Everything a benchmark starts is stopped by the context manager that started it: databases
are dropped (PostgreSQL) or deleted (SQLite, under /tmp), server process groups are killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import loadgen
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slotwise import migrate
from slotwise.booking.models import Status
from slotwise.db import make_engine
from slotwise.models import Appointment, Provider, User, WeeklyPattern
from slotwise.users.models import Role

BENCH_DIR = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get(
    "SLOTWISE_BENCH_POSTGRES_URL",
    os.environ.get(
        "SLOTWISE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
)
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DATABASES = ("sqlite", "postgresql")
BENCH_ZONE = "America/New_York"


# -- databases -------------------------------------------------------------------------------


def _dsn(url: str, database: str | None = None) -> str:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    return dsn.rsplit("/", 1)[0] + "/" + database if database else dsn


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(_dsn(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also when a loop is already running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def postgres_version() -> str | None:
    async def query() -> str:
        connection = await asyncpg.connect(_dsn(POSTGRES_URL), timeout=5)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    try:
        return str(_run_sync(query()))
    except Exception:  # no server: the machine line says so
        return None


def postgres_unavailable() -> str | None:
    """None when the bench PostgreSQL answers, else why not."""
    try:
        _run_sync(_pg_admin("SELECT 1"))
    except Exception as exc:  # any failure to connect: there is no server to measure
        return f"PostgreSQL at {POSTGRES_URL} does not answer ({exc.__class__.__name__})"
    return None


def measured_databases(databases: Sequence[str], report: Report) -> Iterator[str]:
    """The databases asked for that can be measured; PostgreSQL without a server is
    skipped, with the reason in the report."""
    for kind in databases:
        if kind == "postgresql" and (reason := postgres_unavailable()):
            print(f"skipped PostgreSQL: {reason}")
            report.skipped.append(reason)
            continue
        yield kind


def command(
    run: Callable[..., dict[str, Any]], description: str, quick: str = "small counts, a few seconds"
) -> int:
    """A benchmark script's command line: ``--quick`` and ``--db`` (repeatable), then
    ``run``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--db", choices=DATABASES, action="append", help="default: both")
    args = parser.parse_args()
    run(quick=args.quick, databases=tuple(args.db or DATABASES))
    return 0


@contextlib.contextmanager
def bench_database(kind: str, name: str) -> Iterator[str]:
    """A fresh, migrated database for one benchmark; gone when the block ends."""
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"slotwise-bench-{name}-", dir="/tmp")
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        try:
            migrate.upgrade(url)
            yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    database = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    _run_sync(_pg_admin(f'CREATE DATABASE "{database}"'))
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
        migrate.upgrade(url)
        yield url
    finally:
        _run_sync(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def seeding_session(url: str) -> AsyncIterator[AsyncSession]:
    """A session on a short-lived engine of its own (the bench process's, not the server's)."""
    engine = make_engine(url, pool_size=2)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            yield session
    finally:
        await engine.dispose()


async def analyze(session: AsyncSession) -> None:
    """Fresh planner statistics, as autovacuum would have them on a live database."""
    from sqlalchemy import text

    await session.execute(text("ANALYZE"))


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    label: str
    port: int
    pid: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the worker in MB (10^6 bytes), from /proc."""
        values: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) * 1024 / 1e6, 1)  # /proc counts KiB
        return values


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env.update(
        SLOTWISE_DATABASE_URL=database_url,
        SLOTWISE_SECRET_KEY=SECRET_KEY,
        SLOTWISE_RATE_LIMIT_ENABLED="false",
        SLOTWISE_LOG_LEVEL="WARNING",
        SLOTWISE_ENV="production",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def uvicorn_server(
    app: str,
    database_url: str,
    *,
    label: str,
    ready_path: str = "/health",
    app_dir: Path | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """One uvicorn process (its own process group) on a free port; killed on exit."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="slotwise-bench-server-", dir="/tmp")
    log_path = Path(workdir) / "server.log"
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning"]
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=workdir,
            env=server_env(database_url, **(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(label=label, port=port, pid=process.pid, log_path=log_path)
    try:
        _wait_ready(server, process, ready_path)
        yield server
    except BaseException:
        tail = log_path.read_text(errors="replace")[-2000:]
        print(f"--- {label} log tail ---\n{tail}\n---", file=sys.stderr)
        raise
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def static_server() -> Iterator[Server]:
    """loadgen's trivial asyncio server, in its own process: the client's ceiling."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(BENCH_DIR / "loadgen.py"), "--serve-static", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(label="static", port=port, pid=process.pid, log_path=Path(os.devnull))
    try:
        _wait_ready(server, process, "/")
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{server.label} exited ({process.returncode}):\n{tail}")
        try:
            status, _ = _run_sync(loadgen.fetch(server.url + path))
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.label} did not answer {path} within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# -- CPU accounting ------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_seconds(pid: int) -> float:
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / _TICKS  # utime + stime


@dataclass
class CpuMeter:
    """CPU used by one process, and by the whole machine, between start() and stop()."""

    pid: int
    worker_s: float = 0.0
    machine_busy: float = 0.0

    def start(self) -> CpuMeter:
        self._worker0 = _process_seconds(self.pid)
        self._machine0 = _machine_ticks()
        return self

    def stop(self, requests: int) -> dict[str, float]:
        self.worker_s = _process_seconds(self.pid) - self._worker0
        busy, total = (a - b for a, b in zip(_machine_ticks(), self._machine0, strict=True))
        self.machine_busy = busy / total if total else 0.0
        return {
            "worker_cpu_ms_per_request": round(self.worker_s * 1000 / max(requests, 1), 3),
            "machine_cpu_busy_pct": round(self.machine_busy * 100, 1),
        }


def machine_busy_pct(seconds: float = 2.0) -> float:
    """How busy all CPUs are over the next `seconds` (before a run: is anyone else busy?)."""
    busy0, total0 = _machine_ticks()
    time.sleep(seconds)
    busy1, total1 = _machine_ticks()
    return round((busy1 - busy0) / max(total1 - total0, 1) * 100, 1)


def wait_for_quiet(max_wait_s: float, threshold_pct: float = 20.0) -> float:
    """Wait (up to max_wait_s) until other processes leave the CPUs mostly idle; the last
    reading. The benchmarks share the machine with whatever else runs on it."""
    deadline = time.monotonic() + max_wait_s
    busy = machine_busy_pct()
    while busy > threshold_pct and time.monotonic() < deadline:
        print(f"machine {busy:.0f}% busy before the run: waiting for it to settle", flush=True)
        time.sleep(5)
        busy = machine_busy_pct()
    return busy


def wrk(url: str, *, connections: int, duration_s: int) -> float | None:
    """Requests/s by wrk (one thread), as a cross-check of the Python client; None if absent."""
    executable = shutil.which("wrk")
    if executable is None:
        return None
    out = subprocess.run(  # noqa: S603 - wrk from PATH, arguments of our own
        [executable, "-t1", f"-c{connections}", f"-d{duration_s}s", url],
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=False,
    ).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


# -- seeding -----------------------------------------------------------------------------------


@dataclass
class SeededProvider:
    id: uuid.UUID
    handle: str
    zone: ZoneInfo


async def add_provider(
    session: AsyncSession,
    *,
    handle: str,
    session_minutes: int = 30,
    interval_minutes: int = 15,
    zone: str = BENCH_ZONE,
) -> SeededProvider:
    """A provider who works 09:00-17:00 every day, books without confirmation, no notice."""
    now = datetime.now(UTC)
    user = User(
        id=uuid.uuid4(),
        email=f"{handle}@example.com",
        full_name=f"Provider {handle}",
        role=Role.PROVIDER,
        hashed_password="!",
        created_at=now,
        updated_at=now,
    )
    provider = Provider(
        id=uuid.uuid4(),
        user_id=user.id,
        public_handle=handle,
        timezone=zone,
        session_duration_minutes=session_minutes,
        slot_interval_minutes=interval_minutes,
        min_notice_minutes=0,
        max_advance_days=365,
        requires_confirmation=False,
        cancellation_window_minutes=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    session.add(provider)
    await session.flush()
    session.add_all(
        WeeklyPattern(
            provider_id=provider.id,
            day_of_week=day,
            start_time=wall_time(9),
            end_time=wall_time(17),
            created_at=now,
            updated_at=now,
        )
        for day in range(7)
    )
    await session.flush()
    return SeededProvider(id=provider.id, handle=handle, zone=ZoneInfo(zone))


def appointment_row(
    provider: SeededProvider, start_at: datetime, minutes: int, client_key: str
) -> dict[str, Any]:
    """One confirmed guest appointment, shaped as booking/create.py builds it (no buffers)."""
    end_at = start_at + timedelta(minutes=minutes)
    appointment_id = uuid.uuid4()
    return {
        "id": appointment_id,
        "session_key": appointment_id,  # one-to-one: its own session
        "provider_id": provider.id,
        "service_id": None,
        "client_id": None,
        "guest_name": "Seeded guest",
        "guest_email": client_key,
        "guest_phone": None,
        "client_key": client_key,
        "start_at": start_at,
        "end_at": end_at,
        "blocked_start_at": start_at,
        "blocked_end_at": end_at,
        "timezone": str(provider.zone),
        "status": Status.CONFIRMED,
        "notes": None,
        "cancel_reason": None,
        "manage_token_hash": None,
        "sequence": 0,
        "created_at": start_at - timedelta(days=3),
        "updated_at": start_at - timedelta(days=3),
    }


async def insert_appointments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5_000):
        await session.execute(insert(Appointment), list(rows[start : start + 5_000]))


def local_midnight(on_date: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(on_date, wall_time(), zone).astimezone(UTC)


# -- figures -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the summary table: a figure against its target."""

    benchmark: str
    database: str
    metric: str
    value: str
    target: str = "reference"
    passed: bool | None = None

    @property
    def status(self) -> str:
        return {True: "pass", False: "miss", None: "-"}[self.passed]


@dataclass
class Report:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": [{**row.__dict__, "status": row.status} for row in self.rows],
            "details": self.details,
            "skipped": self.skipped,
        }


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| Benchmark | Database | Metric | Figure | Target | Result |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.database} | {row.metric} | {row.value} | "
            f"{row.target} | {row.status} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cores = os.cpu_count()
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "?"
    return f"{cores} cores, {memory}, Python {sys.version.split()[0]}"


def banner(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 86 - len(text)), flush=True)


def measure_client_ceiling(
    report: Report, *, connections: int, duration_s: float, warmup_s: float
) -> None:
    """The load client's own ceiling, against a static server, in the same run."""
    with static_server() as server:
        result = asyncio.run(
            loadgen.run_load(
                server.url,
                loadgen.repeat(loadgen.build_request("GET", "/")),
                connections=connections,
                duration_s=duration_s,
                warmup_s=warmup_s,
                label="client ceiling (static server)",
            )
        )
    print(result.line())
    report.add(
        f"Load client ceiling, {connections} conn",
        "-",
        "req/s vs static asyncio server",
        f"{result.rps:,.0f}",
    )
    report.details["client_ceiling"] = result.as_dict()

"""`slotwise serve` as a real process tree: stopped by SIGTERM or SIGINT, nothing it started
is left running (the mail worker, multiprocessing's resource tracker, uvicorn's workers).

Linux only (the process tree is read from /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

pytestmark = [
    pytest.mark.long,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc"),
]

SLOTWISE = Path(sys.executable).parent / "slotwise"
START_SECONDS = 120  # two CPUs shared with other test runs: uvicorn's workers start slowly
GRACEFUL_SECONDS = 5  # serve --graceful-timeout in these tests


def _state_and_session(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
    state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
    return state, int(session)


def in_session(session: int) -> dict[int, str]:
    """Every live process of the session (serve's, which everything it starts inherits),
    with its command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _state_and_session(int(entry.name))
        if stat is None or stat[1] != session or stat[0] == "Z":  # a zombie has stopped
            continue
        try:
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            continue
    return found


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env.update(
        SLOTWISE_ENV="development",  # serve starts the mail worker
        SLOTWISE_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'slotwise.db'}",
        SLOTWISE_MAIL_DIR=str(workdir / "mail"),
        SLOTWISE_WORKER_POLL_SECONDS="0.2",
        SLOTWISE_LOG_LEVEL="INFO",  # the worker says when it polls
    )
    return env


def start(command: list[str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        command,
        cwd=workdir,  # its development key and SQLite file go there
        env=environment(workdir),
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "serve.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,  # its own session, which all it starts inherits
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, (workdir / "serve.log").read_text()
        try:
            up = httpx.head(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            up = False
        if up and "worker_started" in (workdir / "serve.log").read_text():
            return process
        time.sleep(0.2)
    process.kill()
    pytest.fail("serve or its worker did not start: " + (workdir / "serve.log").read_text())


def stop_and_check(process: subprocess.Popen[bytes], target: int, signum: int) -> None:
    """Signal ``target`` (the serve process, or uv's), then nothing that ``process`` started
    lives on: no process is left in its session."""
    started = in_session(process.pid)
    commands = " | ".join(started.values())
    assert "spawn_main" in commands, started  # the mail worker ...
    assert "resource_tracker" in commands, started  # ... and multiprocessing's tracker
    os.kill(target, signum)
    try:
        process.wait(timeout=GRACEFUL_SECONDS + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("serve did not exit")
    # Stopped by a signal it can handle, serve stops its workers before it exits; the
    # resource tracker follows them (it ends when the last of them has).
    workers_left = {p: c for p, c in in_session(process.pid).items() if "spawn_main" in c}
    deadline = time.monotonic() + 5
    while (left := in_session(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # a failing test leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert left == {}, f"still running after serve exited: {left}"
    if signum != signal.SIGKILL:
        assert workers_left == {}, f"serve exited before its workers: {workers_left}"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, int]:
    return tmp_path, free_port()


@pytest.mark.parametrize(
    ("workers", "signum"), [(1, signal.SIGTERM), (1, signal.SIGINT), (2, signal.SIGTERM)]
)
def test_serve_stops_everything_it_started(
    served: tuple[Path, int], workers: int, signum: int
) -> None:
    workdir, port = served
    command = [str(SLOTWISE), "serve", "--port", str(port), "--workers", str(workers)]
    process = start([*command, "--graceful-timeout", str(GRACEFUL_SECONDS)], workdir, port)
    stop_and_check(process, process.pid, signum)


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_serve_under_uv_run_stops_everything_on_sigterm(served: tuple[Path, int]) -> None:
    """As `uv run slotwise serve` in a container: SIGTERM goes to uv, which passes it on."""
    workdir, port = served
    project = Path(__file__).resolve().parents[2]
    command = ["uv", "run", "--project", str(project), "--no-sync", "slotwise", "serve"]
    command += ["--port", str(port), "--graceful-timeout", str(GRACEFUL_SECONDS)]
    process = start(command, workdir, port)
    stop_and_check(process, process.pid, signal.SIGTERM)


def test_the_mail_worker_stops_when_serve_is_killed(served: tuple[Path, int]) -> None:
    """SIGKILL gives `serve` no chance to stop its worker: the worker sees it gone."""
    workdir, port = served
    process = start([str(SLOTWISE), "serve", "--port", str(port)], workdir, port)
    stop_and_check(process, process.pid, signal.SIGKILL)

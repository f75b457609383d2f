"""`slotwise serve` as a real process tree: stopped by SIGTERM or SIGINT, nothing it started
is left running (the mail worker, multiprocessing's resource tracker, uvicorn's workers).

Linux only (the process tree is read from /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

SLOTWISE = Path(sys.executable).parent / "slotwise"
START_SECONDS = 120  # two CPUs shared with other test runs: uvicorn's workers start slowly
GRACEFUL_SECONDS = 5  # serve --graceful-timeout in these tests


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return int(ppid), state


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _parent_and_state(int(entry.name))) is not None:
            children.setdefault(found[0], []).append(int(entry.name))
    below: dict[int, str] = {}
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop()
        try:
            below[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            continue
        queue.extend(children.get(pid, []))
    return below


def alive(pid: int) -> bool:
    found = _parent_and_state(pid)
    return found is not None and found[1] != "Z"  # a zombie has stopped


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env.update(
        SLOTWISE_ENV="development",  # serve starts the mail worker
        SLOTWISE_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'slotwise.db'}",
        SLOTWISE_MAIL_DIR=str(workdir / "mail"),
        SLOTWISE_WORKER_POLL_SECONDS="0.2",
        SLOTWISE_LOG_LEVEL="WARNING",
    )
    return env


def start(command: list[str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        command,
        cwd=workdir,  # its development key and SQLite file go there
        env=environment(workdir),
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "serve.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,  # signalled only by the test
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, (workdir / "serve.log").read_text()
        try:
            if httpx.head(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("serve did not answer /health: " + (workdir / "serve.log").read_text())


def stop_and_check(process: subprocess.Popen[bytes], target: int, signum: int) -> None:
    """Signal ``target`` (the serve process, or uv's), then nothing below ``process`` lives."""
    started = descendants(process.pid)
    assert any("slotwise" in line or "spawn_main" in line for line in started.values()), started
    os.kill(target, signum)
    try:
        process.wait(timeout=GRACEFUL_SECONDS + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("serve did not exit")
    deadline = time.monotonic() + 5
    while (left := {p: c for p, c in started.items() if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # a failing test leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert left == {}, f"still running after serve exited: {left}"


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

"""docs/api.md, run: every example, in order, through bash and curl, against a live server.

The guide's conventions (written for a human reader first):

- Each ```bash block holds commands; a command may run over several lines with ``\\``.
  ``http://127.0.0.1:8000`` is replaced by the test server's address.
- The ``#`` lines right after a command (or a ``#`` comment at the end of its line) show
  what it answers: an optional status (``201``, or ``HTTP/1.1 201 Created`` followed by
  headers when the command uses ``-i``), then JSON. The JSON may leave things out: ``…``
  stands for members or items not shown, and inside a string for characters not shown,
  together with the letters, digits, ``-`` and ``_`` just before it (``"77da…"`` is any
  id, ``"Algebra and …"`` any text that starts so). Members shown must be there with
  those values; items of a list in that order; a list without ``…`` has exactly those
  items. A comment that starts with neither a status nor JSON is prose. With no status
  shown, the command must succeed (2xx). After a command that is not curl
  (``uv run slotwise demo``), the ``#`` lines are its output, line by line.
- ``NAME=…`` lines tell the reader to keep a value; the test takes it from a hidden
  ``<!-- guide: shell code -->`` comment, run in the same shell, where ``body`` prints the
  last example's answer, ``json EXPR`` evaluates ``EXPR`` on JSON read from stdin (as
  ``d``), ``sign_in EMAIL PASSWORD`` prints an access token, ``mailed_reset_token
  EMAIL`` the token of the reset link mailed to that address and ``mailed_token EMAIL
  KIND`` that of the link in its message of another kind (``booking_verify``,
  ``waitlist_offer``).
- The server's request clock starts at the guide's moment (see tests/e2e/guide_clock.py),
  so its dates stay valid; ``uv run slotwise …`` runs the CLI as of that moment too.
  A hidden step may move the server's clock on by writing seconds to
  ``$GUIDE_DIR/guide-clock-ahead`` (and back by removing it).

A failure names the example (its line in docs/api.md), the command, what the guide shows
and what the server answered; every example is run even after one fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.guide_reader import (
    Step,
    mismatch,
    read_expected,
    read_guide,
    split_trailing_comment,
    string_pattern,
)
from tests.servers import free_port, wait_until_up

pytestmark = pytest.mark.long

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "api.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
MARKER = "__guide_step_done__"
STEP_SECONDS = 30

PRELUDE = r"""
curl() { command curl -D "$GUIDE_DIR/headers" "$@"; }
uv() { "$GUIDE_PYTHON" -m tests.e2e.guide_clock "$@"; }
body() { cat "$GUIDE_DIR/last"; }
json() {
  "$GUIDE_PYTHON" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
mailed_token() {  # the token of the link mailed to $1 in a message of kind $2, once it is there
  "$GUIDE_PYTHON" - "$1" "$2" <<'PYTHON'
import email, email.policy, pathlib, re, sys, time
for _ in range(100):
    for path in sorted(pathlib.Path("var/mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == sys.argv[1] and message["X-Slotwise-Kind"] == sys.argv[2]:
            text = message.get_body(preferencelist=("plain",)).get_content()
            print(re.search(r"(?:token=|/verify/|/holds/)([A-Za-z0-9_-]+)", text).group(1))
            sys.exit()
    time.sleep(0.2)
sys.exit(f"no {sys.argv[2]} email to {sys.argv[1]}")
PYTHON
}
mailed_reset_token() { mailed_token "$1" password_reset; }
sign_in() {
  command curl -s -X POST http://127.0.0.1:8000/api/v1/auth/login --data-urlencode "username=$1" \
    --data-urlencode "password=$2" | json 'd["access_token"]'
}
"""


# -- the guide, run --------------------------------------------------------------------------


class Shell:
    """One bash for the whole guide, so that variables carry from example to example."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int) -> None:
        self.dir = workdir
        self.port = port
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],  # noqa: S607 - a user's shell
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            text=True,
            start_new_session=True,  # so that close() ends whatever a command left running
        )
        self.run(PRELUDE)

    def run(self, command: str) -> tuple[int, str, str]:
        """Exit status, output and error output of ``command``."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        (self.dir / "headers").unlink(missing_ok=True)
        local = command.replace(DOCUMENTED_BASE, f"http://127.0.0.1:{self.port}")
        self.process.stdin.write(
            f'{{ {local}\n}} < /dev/null > "$GUIDE_DIR/out" 2> "$GUIDE_DIR/err";'
            f' echo "{MARKER} $?"\n'
        )
        self.process.stdin.flush()
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], STEP_SECONDS)
            if not ready:
                raise AssertionError(f"no end after {STEP_SECONDS} s:\n{command}")
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"bash ended while running:\n{command}")
            if line.startswith(MARKER):
                code = int(line.split()[1])
                break
        return code, (self.dir / "out").read_text(), (self.dir / "err").read_text()

    def unset_variables(self, command: str) -> list[str]:
        """The variables ``command`` uses that the shell has not set (a hidden snippet
        sets its own before use)."""
        used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", command))
        assigned = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", command))
        wanted = sorted(used - assigned)
        if not wanted:
            return []
        _, out, _ = self.run(
            f'for v in {" ".join(wanted)}; do [ -z "${{!v+x}}" ] && echo "$v"; done; true'
        )
        return out.split()

    def response_head(self) -> tuple[int, dict[str, str]] | None:
        path = self.dir / "headers"
        if not path.exists():
            return None
        text = path.read_bytes().decode().replace("\r\n", "\n")
        blocks = [b for b in text.split("\n\n") if b.startswith("HTTP/")]
        lines = blocks[-1].split("\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        _stop(self.process)


def check(step: Step, shell: Shell) -> str | None:
    """What is wrong with ``step``'s answer, or None."""
    unset = shell.unset_variables(step.command)
    if unset:
        return f"no earlier example sets {', '.join(unset)} (add a <!-- guide: --> line)"
    code, out, err = shell.run(step.command)
    if not step.hidden:
        (shell.dir / "last").write_text(out)
    if step.hidden:
        return None if code == 0 else f"the hidden setup failed ({code}): {err or out}"
    if not step.command.lstrip().startswith("curl"):
        if code != 0:
            return f"exit status {code}: {err or out}"
        got = out.splitlines()
        same = len(got) == len(step.expected) and all(
            string_pattern(shown).fullmatch(line)
            for shown, line in zip(step.expected, got, strict=True)
        )
        if step.expected and not same:
            return f"output differs:\n  guide:  {step.expected}\n  got:    {got}"
        return None
    head = shell.response_head()
    if head is None:
        return f"curl got no answer (exit {code}): {err}"
    status, headers = head
    shown = read_expected(step.expected)
    if "-i" in step.command.split():
        out = out.split("\n\n", 1)[-1]  # bash gave the text with "\r\n" read as "\n"
    body_text = out
    if shown.status is None and not 200 <= status < 300:
        return f"status {status} (the guide shows success): {body_text[:600]}"
    if shown.status is not None and status != shown.status:
        return f"status {status}, the guide shows {shown.status}: {body_text[:600]}"
    for name, value in shown.headers.items():
        if headers.get(name) != value:
            return f"header {name}: the guide shows {value!r}, got {headers.get(name)!r}"
    # Text (iCalendar, Server-Sent Events) shown over several lines: compared with the
    # body's lines joined by single spaces, as the guide's lines are.
    if shown.text is not None and not string_pattern(
        re.sub(r"<[^>]+>", "…", shown.text).replace(" … ", "…")
    ).search(" ".join(body_text.split())):
        return f"body: the guide shows {shown.text!r}, the server sent {body_text[:600]!r}"
    if shown.has_body:
        try:
            got = json.loads(body_text)
        except ValueError:
            return f"body is not JSON: {body_text[:600]!r}"
        return mismatch(shown.body, got)
    return None


def _stop(process: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # already ended, with all it started
        process.wait(timeout=15)
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_guide(database_url: str, workdir: Path) -> list[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env |= {
        "SLOTWISE_DATABASE_URL": database_url,
        "SLOTWISE_PUBLIC_BASE_URL": DOCUMENTED_BASE,
        "SLOTWISE_WORKER_POLL_SECONDS": "0.2",
        # The guide shows waitlist_limit_reached without filling five lines (docs/api.md).
        "SLOTWISE_WAITLIST_MAX_PER_CLIENT": "1",
        # Connected calendars (docs/api.md): a key, and the guide's calendar on loopback.
        "SLOTWISE_CALENDAR_KEYS": "hq7v0S6pV1mX4WlYp3m8k1sGmT9rZ2bN5cD7eF0aB1c=",
        "SLOTWISE_OUTBOUND_ALLOW": "127.0.0.1",
        "SLOTWISE_OUTBOUND_ALLOW_HTTP": "true",
        "SLOTWISE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "GUIDE_DIR": str(workdir),
        "GUIDE_PYTHON": sys.executable,
    }
    started = [
        subprocess.Popen(  # noqa: S603 - the app, and its mail worker
            [sys.executable, *arguments],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / f"{name}.log").open("w"),
            start_new_session=True,
        )
        for name, arguments in (
            ("server", ["-m", "tests.e2e.guide_clock", "serve", str(port)]),
            ("worker", ["-m", "slotwise.cli", "worker", "--no-migrate"]),
        )
    ]
    failures: list[str] = []
    try:
        wait_until_up(f"http://127.0.0.1:{port}", started[0], name="the guide's server")
        shell = Shell(workdir, env, port)
        try:
            for step in read_guide(GUIDE.read_text()):
                problem = check(step, shell)
                if problem:
                    failures.append(
                        f"docs/api.md line {step.line}:\n{step.command}\n-> {problem}\n"
                    )
        finally:
            shell.close()
    finally:
        for process in started:
            _stop(process)
    return failures


async def test_every_example_of_the_api_guide(database_url: str, tmp_path: Path) -> None:
    failures = await asyncio.to_thread(run_guide, database_url, tmp_path)
    if failures:
        pytest.fail(f"{len(failures)} examples drifted:\n\n" + "\n".join(failures), pytrace=False)


# -- the reader itself -----------------------------------------------------------------------


def test_shown_json_leaves_out_what_it_marks() -> None:
    shown = read_expected(
        ['201 {"id": "77da…", "ranges": [{"start_time": "09:00:00"}], …,', '"list": [1, …, 4]}']
    )
    assert shown.status == 201
    assert (
        mismatch(
            shown.body,
            {
                "id": "77dae1",
                "ranges": [{"start_time": "09:00:00"}],
                "extra": 1,
                "list": [1, 2, 3, 4],
            },
        )
        is None
    )
    assert mismatch(shown.body, {"id": "x", "ranges": [], "list": [1, 4]}) is not None
    assert (
        mismatch(shown.body, {"id": "x", "ranges": [{"start_time": "09:00:00"}], "list": [4, 1]})
        is not None
    )
    flag = read_expected(['{"blocked": true, "count": 0, "bio": "Algebra and …"}']).body
    assert mismatch(flag, {"blocked": True, "count": 0, "bio": "Algebra and calculus"}) is None
    assert mismatch(flag, {"blocked": 1, "count": 0, "bio": "Algebra and calculus"}) is not None
    assert (
        mismatch(flag, {"blocked": True, "count": False, "bio": "Algebra and calculus"}) is not None
    )
    assert mismatch(flag, {"blocked": True, "count": 0, "bio": "Calculus"}) is not None


@pytest.mark.parametrize(
    ("line", "command", "comment"),
    [
        (
            'curl -s http://x/health        # {"status":"ok"}',
            "curl -s http://x/health",
            '{"status":"ok"}',
        ),
        ('curl -d \'{"a": "#1"}\'', 'curl -d \'{"a": "#1"}\'', None),
    ],
)
def test_a_trailing_comment_is_told_from_the_command(
    line: str, command: str, comment: str | None
) -> None:
    assert split_trailing_comment(line) == (command, comment)

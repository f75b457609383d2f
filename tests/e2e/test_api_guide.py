"""docs/api.md, run: every example, in order, through bash and curl, against a live server.

The guide's conventions (written for a human reader first):

- Each ```bash block holds commands; a command may run over several lines with ``\\``.
  ``http://127.0.0.1:8000`` is replaced by the test server's address.
- The ``#`` lines right after a command (or a ``#`` comment at the end of its line) show
  what it answers: an optional status (``201``, or ``HTTP/1.1 201 Created`` followed by
  headers when the command uses ``-i``), then JSON. The JSON may leave things out: ``…``
  stands for members or items not shown, and inside a string for characters not shown
  (``"77da…"`` is any id). Members shown must be there with those values; items of a list
  in that order; a list without ``…`` has exactly those items. A comment that starts with
  neither a status nor JSON is prose. With no status shown, the command must succeed (2xx).
  After a command that is not curl (``uv run slotwise demo``), the ``#`` lines are its
  output, line by line.
- ``NAME=…`` lines tell the reader to keep a value; the test takes it from a hidden
  ``<!-- guide: shell code -->`` comment, run in the same shell, where ``body`` prints the
  last example's answer, ``json EXPR`` evaluates ``EXPR`` on JSON read from stdin (as ``d``) and
  ``sign_in EMAIL PASSWORD`` prints an access token (``mailed_reset_token EMAIL``: the
  token of the reset link mailed to that address).
- The server's request clock starts at the guide's moment (see tests/e2e/guide_clock.py),
  so its dates stay valid; ``uv run slotwise …`` runs the CLI as of that moment too.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_readme_command import _free_port

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "api.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
MARKER = "__guide_step_done__"
STEP_SECONDS = 30
ELLIPSIS = "…"

PRELUDE = r"""
curl() { command curl -D "$GUIDE_DIR/headers" "$@"; }
uv() { "$GUIDE_PYTHON" -m tests.e2e.guide_clock "$@"; }
body() { cat "$GUIDE_DIR/last"; }
json() {
  "$GUIDE_PYTHON" -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}
mailed_reset_token() {  # the token mailed to $1 (to var/mail, by the worker), once it is there
  "$GUIDE_PYTHON" - "$1" <<'PYTHON'
import email, email.policy, pathlib, re, sys, time
for _ in range(100):
    for path in sorted(pathlib.Path("var/mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == sys.argv[1] and message["X-Slotwise-Kind"] == "password_reset":
            text = message.get_body(preferencelist=("plain",)).get_content()
            print(re.search(r"token=([A-Za-z0-9_-]+)", text).group(1))
            sys.exit()
    time.sleep(0.2)
sys.exit("no reset email")
PYTHON
}
sign_in() {
  command curl -s -X POST http://127.0.0.1:8000/api/v1/auth/login --data-urlencode "username=$1" \
    --data-urlencode "password=$2" | json 'd["access_token"]'
}
"""


# -- the guide, read ------------------------------------------------------------------------


@dataclass
class Step:
    line: int  # in docs/api.md, 1-based
    command: str
    expected: list[str] = field(default_factory=list)  # the comment lines, without "# "
    hidden: bool = False  # a <!-- guide: … --> snippet: run, not checked


PLACEHOLDER = re.compile(r"^\s*[A-Z][A-Z0-9_]*=…\S*(;\s*[A-Z][A-Z0-9_]*=…\S*)*;?\s*(#.*)?$")


def _split_trailing_comment(line: str) -> tuple[str, str | None]:
    """``command  # comment`` -> (command, comment), a ``#`` outside quotes only."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote and line[index - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and index > 0 and line[index - 1] in " \t":
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line, None


def read_guide(text: str) -> list[Step]:
    steps: list[Step] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("<!-- guide:"):
            start = index
            snippet = [line.removeprefix("<!-- guide:")]
            while "-->" not in snippet[-1]:
                index += 1
                snippet.append(lines[index])
            snippet[-1] = snippet[-1].split("-->")[0]
            steps.append(Step(start + 1, "\n".join(snippet).strip(), hidden=True))
        elif line.strip() == "```bash":
            index += 1
            current: Step | None = None
            while lines[index].strip() != "```":
                raw = lines[index]
                if raw.startswith("#"):
                    if current is not None:
                        current.expected.append(raw[1:].removeprefix(" ").rstrip())
                elif raw.strip() and not PLACEHOLDER.match(raw):
                    start = index
                    command = [raw]
                    while command[-1].endswith("\\"):
                        index += 1
                        command.append(lines[index])
                    last, comment = _split_trailing_comment(command[-1])
                    command[-1] = last
                    current = Step(start + 1, "\n".join(command))
                    if comment:
                        current.expected.append(comment)
                    steps.append(current)
                else:
                    current = None
                index += 1
        index += 1
    return steps


# -- what the guide shows, as a pattern ------------------------------------------------------


class Gap:
    """``…``: members or items left out."""

    def __repr__(self) -> str:
        return ELLIPSIS


TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<gap>…|\.\.\.)|(?P<punct>[{}\[\]:,])'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<word>true|false|null))"
)


class ShownJSON:
    """A parser for JSON with ``…`` gaps; ``parse`` returns the value and where it ended."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            found = TOKEN.match(text, position)
            if found is None or found.end() == position:
                break
            kind = found.lastgroup
            assert kind is not None
            self.tokens.append((kind, found.group(kind)))
            position = found.end()
        self.at = 0

    def _next(self) -> tuple[str, str]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def value(self) -> Any:
        kind, token = self._next()
        if kind == "gap":
            return Gap()
        if kind == "string":
            return json.loads(token)
        if kind == "number":
            return json.loads(token)
        if kind == "word":
            return {"true": True, "false": False, "null": None}[token]
        if token == "{":
            return self._members()
        if token == "[":
            return self._items()
        raise ValueError(f"unexpected {token!r}")

    def _members(self) -> dict[str, Any]:
        members: dict[str, Any] = {}
        while True:
            kind, token = self._next()
            if token == "}":
                return members
            if kind in {"gap"} or token == ",":
                continue
            if kind != "string":
                raise ValueError(f"expected a member name, got {token!r}")
            _, colon = self._next()
            if colon != ":":
                raise ValueError(f"expected ':' after {token}")
            members[json.loads(token)] = self.value()

    def _items(self) -> list[Any]:
        items: list[Any] = []
        while True:
            _, token = self.tokens[self.at]
            if token == "]":
                self.at += 1
                return items
            if token == ",":
                self.at += 1
                continue
            items.append(self.value())


@dataclass
class Expected:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False
    text: str | None = None  # a non-JSON body (e.g. iCalendar), with … gaps


def read_expected(lines: list[str]) -> Expected:
    shown = Expected()
    rest = list(lines)
    if rest and rest[0].startswith("HTTP/"):
        shown.status = int(rest.pop(0).split()[1])
        while rest and re.match(r"^[A-Za-z-]+: ", rest[0]):
            name, value = rest.pop(0).split(": ", 1)
            shown.headers[name.lower()] = value
    text = " ".join(rest).strip()
    status = re.match(r"^(\d{3})\b:?\s*", text)
    if status:
        shown.status = int(status.group(1))
        text = text[status.end() :]
    if text.startswith(("{", "[")):
        shown.body = ShownJSON(text).value()
        shown.has_body = True
    elif text.startswith("BEGIN:"):
        shown.text = text
    return shown


def _string_pattern(shown: str) -> re.Pattern[str]:
    parts = re.split(r"[A-Za-z0-9_-]*…", shown)
    return re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)


def mismatch(shown: Any, got: Any, where: str = "body") -> str | None:
    """Where ``got`` differs from what the guide shows, or None."""
    if isinstance(shown, Gap):
        return None
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            return f"{where}: the guide shows an object, the server sent {got!r}"
        for name, value in shown.items():
            if name not in got:
                return f"{where}.{name}: missing (the server sent keys {sorted(got)})"
            problem = mismatch(value, got[name], f"{where}.{name}")
            if problem:
                return problem
        return None
    if isinstance(shown, list):
        if not isinstance(got, list):
            return f"{where}: the guide shows a list, the server sent {got!r}"
        if not _items_match(shown, got):
            return f"{where}: the items differ:\n  guide:  {shown!r}\n  server: {got!r}"
        return None
    if isinstance(shown, str) and ELLIPSIS in shown:
        if isinstance(got, str) and _string_pattern(shown).fullmatch(got):
            return None
        return f"{where}: the guide shows {shown!r}, the server sent {got!r}"
    if shown != got or (type(shown) is not type(got) and not isinstance(got, int | float)):
        return f"{where}: the guide shows {shown!r}, the server sent {got!r}"
    return None


def _items_match(shown: list[Any], got: list[Any]) -> bool:
    if not shown:
        return not got
    head, *tail = shown
    if isinstance(head, Gap):
        return any(_items_match(tail, got[skip:]) for skip in range(len(got) + 1))
    return bool(got) and mismatch(head, got[0]) is None and _items_match(tail, got[1:])


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
            _string_pattern(shown).fullmatch(line)
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
    if shown.text is not None and not _string_pattern(
        re.sub(r"<[^>]+>", "…", shown.text).replace(" … ", "…")
    ).search(body_text):
        return f"body: the guide shows {shown.text!r}, the server sent {body_text[:600]!r}"
    if shown.has_body:
        try:
            got = json.loads(body_text)
        except ValueError:
            return f"body is not JSON: {body_text[:600]!r}"
        return mismatch(shown.body, got)
    return None


def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the guide's server exited early"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the guide's server did not answer in time")


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
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env |= {
        "SLOTWISE_DATABASE_URL": database_url,
        "SLOTWISE_PUBLIC_BASE_URL": DOCUMENTED_BASE,
        "SLOTWISE_WORKER_POLL_SECONDS": "0.2",
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
        _wait_until_up(f"http://127.0.0.1:{port}", started[0])
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
    assert _split_trailing_comment(line) == (command, comment)

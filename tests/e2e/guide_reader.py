"""docs/api.md read: its commands, what each shows it answers, and the comparison of that
with an answer (the conventions are in test_api_guide's docstring)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ELLIPSIS = "…"


# -- the guide, read ------------------------------------------------------------------------


@dataclass
class Step:
    line: int  # in docs/api.md, 1-based
    command: str
    expected: list[str] = field(default_factory=list)  # the comment lines, without "# "
    hidden: bool = False  # a <!-- guide: … --> snippet: run, not checked


PLACEHOLDER = re.compile(r"^\s*[A-Z][A-Z0-9_]*=…\S*(;\s*[A-Z][A-Z0-9_]*=…\S*)*;?\s*(#.*)?$")


def split_trailing_comment(line: str) -> tuple[str, str | None]:
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
                    last, comment = split_trailing_comment(command[-1])
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
    elif text.startswith(("BEGIN:", "id:", "event:")):  # iCalendar, Server-Sent Events
        shown.text = text
    return shown


def string_pattern(shown: str) -> re.Pattern[str]:
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
        if isinstance(got, str) and string_pattern(shown).fullmatch(got):
            return None
        return f"{where}: the guide shows {shown!r}, the server sent {got!r}"
    if shown != got or isinstance(shown, bool) != isinstance(got, bool):  # 1 is not true
        return f"{where}: the guide shows {shown!r}, the server sent {got!r}"
    return None


def _items_match(shown: list[Any], got: list[Any]) -> bool:
    if not shown:
        return not got
    head, *tail = shown
    if isinstance(head, Gap):
        return any(_items_match(tail, got[skip:]) for skip in range(len(got) + 1))
    return bool(got) and mismatch(head, got[0]) is None and _items_match(tail, got[1:])

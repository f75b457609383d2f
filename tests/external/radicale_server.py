"""A real CalDAV server for the tests: Radicale, started on loopback in a process of its own,
with one account (htpasswd, plain) and a filesystem store of the test's own."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import free_port

USER = "nora"
PASSWORD = "app-password-123"


@dataclass(frozen=True)
class Radicale:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def calendar_url(self, name: str) -> str:
        return f"{self.url}{USER}/{name}/"

    def client(self) -> httpx.Client:
        """A plain client of the test's own, to set the server's calendars up."""
        return httpx.Client(auth=(USER, PASSWORD), timeout=10)

    def make_calendar(self, name: str, display_name: str) -> str:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{display_name}</D:displayname></D:prop></D:set>"
            "</C:mkcalendar>"
        )
        url = self.calendar_url(name)
        with self.client() as client:
            made = client.request("MKCALENDAR", url, content=body)
        assert made.status_code == 201, made.text
        return url

    def put(self, calendar_url: str, name: str, ics: bytes) -> None:
        with self.client() as client:
            put = client.put(
                f"{calendar_url}{name}", content=ics, headers={"content-type": "text/calendar"}
            )
        assert put.status_code in (201, 204), put.text

    def delete(self, calendar_url: str, name: str) -> None:
        with self.client() as client:
            gone = client.delete(f"{calendar_url}{name}")
        assert gone.status_code in (200, 204), gone.text

    def names(self, calendar_url: str) -> list[str]:
        """The resources of a calendar (PROPFIND, depth 1)."""
        with self.client() as client:
            found = client.request("PROPFIND", calendar_url, headers={"depth": "1"})
        assert found.status_code == 207, found.text
        hrefs = [part.split("</", 1)[0] for part in found.text.split("href>")[1::2]]
        return sorted(href.rsplit("/", 1)[-1] for href in hrefs if href.endswith(".ics"))

    def read(self, calendar_url: str, name: str) -> str:
        with self.client() as client:
            got = client.get(f"{calendar_url}{name}")
        assert got.status_code == 200, got.text
        return got.text


@contextmanager
def running_radicale(root: Path) -> Iterator[Radicale]:
    users = root / "users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - the test's own server
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--storage-filesystem-folder",
            str(root / "collections"),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(users),
            "--auth-htpasswd-encryption",
            "plain",
            "--rights-type",
            "owner_only",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "radicale.log").open("w"),
    )
    server = Radicale(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (root / "radicale.log").read_text()
            try:
                httpx.get(server.url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

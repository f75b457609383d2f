"""A real HTTP server on loopback serving iCalendar files, as a calendar provider does: an
ETag and Last-Modified with each file, 304 to a request that names them, and what it was
asked (to see the conditional requests)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FILES = Path(__file__).parent / "calendars"
LAST_MODIFIED = "Mon, 01 Feb 2027 00:00:00 GMT"


@dataclass
class CalendarServer:
    """``files``: what each path serves (change it to change the calendar); ``status``
    answers every request instead, when set; ``location`` is a redirect's target."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    status: int | None = None
    location: str | None = None
    asked: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self, path: str, fixture: str | None = None, *, body: bytes | None = None) -> str:
        """Serve a fixture file (or ``body``) at ``path``; its URL."""
        self.files[path] = body if body is not None else (FILES / (fixture or path)).read_bytes()
        return self.url(path)


def _handler(server: CalendarServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            server.asked.append({"path": self.path, **headers})
            if server.status is not None:
                self.send_response(server.status)
                if server.location is not None:
                    self.send_header("Location", server.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = server.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if headers.get("if-none-match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running_calendar_server() -> Iterator[CalendarServer]:
    served = CalendarServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()

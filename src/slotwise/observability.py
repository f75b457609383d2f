"""Structured logs, request ids, Prometheus metrics, and the guards every request passes."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

import structlog
from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotwise.admission import Turns

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")

access_log = structlog.get_logger("slotwise.access")
error_log = structlog.get_logger("slotwise.errors")


def configure_logging(*, level: str, json_logs: bool) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class Metrics:
    def __init__(self, turns: Turns | None = None) -> None:
        self.registry = CollectorRegistry()
        if turns is not None:
            waiting = Gauge(
                "slotwise_http_requests_waiting",
                "Requests waiting for their turn (SLOTWISE_ADMISSION_LIMIT).",
                registry=self.registry,
            )
            waiting.set_function(lambda: turns.waiting)
        self.requests = Counter(
            "slotwise_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "slotwise_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and the latency histogram of a (method, route, status), kept:
        ``labels()`` checks and locks at every call. (Routes are templates, so the keys are
        few.)"""
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        return found


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body = json.dumps(
        {"code": code, "message": message, "details": None, "request_id": request_id},
        separators=(",", ":"),
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER.encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/users/{user_id}``), for labels."""
    # FastAPI keeps the prefixed path of an included router's route in its own scope entry.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """Pure ASGI middleware: request id, body guards, access log and metrics in one pass."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # Bound once, as logging is configured for the app (``configure_logging``, called by
        # ``create_app`` before its first request builds this): through the module's lazy
        # proxy, every line, even one the level filters out, would build a logger again.
        self.access_log = access_log.bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = given if given and _SAFE_REQUEST_ID.match(given) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = {"status": 500}
        responding = False

        async def send_with_id(message: Message) -> None:
            nonlocal responding
            if message["type"] == "http.response.start":
                responding = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        refusal = self._refusal(scope)
        try:
            if refusal is not None:
                status_holder["status"] = refusal[0]
                await _send_error(send, *refusal, request_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except Exception:
            # A bug. Answered here and not raised on: the server would drop the connection
            # (without `Connection: close`) after Starlette's own 500. A response already
            # under way cannot be mended; the server then closes the connection, as it must.
            if responding:
                raise
            error_log.exception("unhandled_error")
            status_holder["status"] = 500
            await _send_error(
                send, 500, "internal_error", "An unexpected error occurred.", request_id
            )
        finally:
            self._record(scope, status_holder["status"], time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = _header(scope, b"content-length")
        if length is not None:
            # ASCII digits only: str.isdigit() also takes "²" (latin-1 0xB2), which int() refuses.
            if not (length.isascii() and length.isdigit()):
                return 400, "bad_request", "Invalid Content-Length."
            if int(length) > self.max_body_bytes:
                return (
                    413,
                    "payload_too_large",
                    f"Bodies are limited to {self.max_body_bytes} bytes.",
                )
            if int(length) == 0:
                return None
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if length is None and not content_type:
            return None
        if content_type in _BODY_TYPES or content_type.endswith("+json"):
            return None
        return 415, "unsupported_media_type", "Send the body as application/json."

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def guarded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"Bodies are limited to {limit} bytes.")
            return message

        return guarded

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        template = route_template(scope)
        method = scope["method"]
        count, latency = self.metrics.series(method, template, status)
        count.inc()
        latency.observe(elapsed)
        self.access_log.info(
            "request",
            method=method,
            path=scope["path"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )

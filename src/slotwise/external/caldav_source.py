"""A CalDAV calendar's events in a window, read with the ``caldav`` package: a time-range
calendar query (REPORT ``calendar-query`` with ``time-range``), recurring events returned
whole (master and overrides) and expanded by ``expand`` as an iCalendar URL's are.

``caldav`` is synchronous, so it runs in a thread; its HTTP does not go out by itself:
its session is replaced by ``GuardedSession``, which hands every request to the loop's
outbound guard (``OutboundGuard.send``). So each CalDAV request, discovery included, is
checked as a webhook is: the host resolved and every address checked, the connection made
to the checked address, no redirect followed (a 3xx is an answer, which caldav reports as
an error), no proxy from the environment, the guard's timeouts and the calendar size cap
on each answer. RFC 6764 discovery (DNS SRV and ``/.well-known``) is off: the server URL
given is the one used.

``caldav`` is imported where a CalDAV calendar is talked to, not with this module: it
brings lxml and requests (about 9 MB of a worker's memory), which a worker that serves
bookings and never syncs a CalDAV calendar has no use for
(`tests/service/test_import_weight.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from slotwise.outbound import OutboundGuard, Refused, TooLarge

# The longest a guarded request may take from the thread's side (the guard's own total
# timeout ends it first; this only keeps a thread from waiting forever on a stopped loop).
_WAIT_SECONDS = 300


class CaldavFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GuardedSession:
    """What ``caldav.DAVClient`` calls for HTTP (``session.request``), done by the outbound
    guard on the event loop, from caldav's thread."""

    def __init__(self, guard: OutboundGuard, loop: asyncio.AbstractEventLoop) -> None:
        self.guard = guard
        self.loop = loop

    def request(
        self,
        method: str,
        url: str,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        **_ignored: Any,  # proxies, timeout, verify, cert: the guard's own rules apply
    ) -> httpx.Response:
        content = data.encode() if isinstance(data, str) else (data or b"")
        sent = self.guard.send(
            method,
            url,
            content=content,
            headers={key: str(value) for key, value in (headers or {}).items()},
            auth=_auth(auth),
        )
        answer = asyncio.run_coroutine_threadsafe(sent, self.loop).result(_WAIT_SECONDS)
        return httpx.Response(
            answer.status_code,
            headers=answer.headers,
            content=answer.body,
            request=httpx.Request(method, url),
        )

    def close(self) -> None:
        pass


def _auth(auth: Any) -> httpx.Auth | None:
    """caldav's credentials (a requests-style Basic or Digest auth) as httpx's."""
    if auth is None:
        return None
    username, password = getattr(auth, "username", None), getattr(auth, "password", None)
    if username is None or password is None:
        raise CaldavFailed("the server asks for an authentication Slotwise does not support")
    if type(auth).__name__ == "HTTPDigestAuth":
        return httpx.DigestAuth(username, password)
    return httpx.BasicAuth(username, password)


def client(secret: dict[str, Any], guard: OutboundGuard, loop: asyncio.AbstractEventLoop) -> Any:
    """A ``caldav.DAVClient`` for the calendar's account, its HTTP through the guard."""
    from caldav.davclient import DAVClient  # here, not at the top: the docstring

    dav: Any = DAVClient(
        url=secret["server_url"],
        username=secret["username"],
        password=secret["password"],
        timeout=int(guard.total_timeout_seconds),
        enable_rfc6764=False,
    )
    dav.session = GuardedSession(guard, loop)  # its one method, request(), is what caldav calls
    return dav


def calendar_of(dav: Any, secret: dict[str, Any]) -> Any:
    """The calendar the secret names: by URL, by display name, or the account's first."""
    if secret.get("calendar_url"):
        return dav.principal().calendar(cal_url=secret["calendar_url"])
    principal = dav.principal()
    if secret.get("calendar_name"):
        return principal.calendar(name=secret["calendar_name"])
    calendars = principal.calendars()
    if not calendars:
        raise CaldavFailed("the account has no calendar")
    return calendars[0]


def _events(
    secret: dict[str, Any],
    guard: OutboundGuard,
    loop: asyncio.AbstractEventLoop,
    start_at: datetime,
    end_at: datetime,
) -> bytes:
    dav = client(secret, guard, loop)
    found = calendar_of(dav, secret).search(start=start_at, end=end_at, event=True)
    documents = [str(one.data) for one in found]
    return "".join(documents).encode() if documents else _EMPTY


_EMPTY = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Slotwise//CalDAV//EN\r\nEND:VCALENDAR\r\n"


async def busy_ics(
    guard: OutboundGuard, secret: dict[str, Any], *, start_at: datetime, end_at: datetime
) -> bytes:
    """The calendar's events reaching into ``[start_at, end_at)``, as iCalendar documents one
    after the other (``expand.busy_time`` reads them all)."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.to_thread(_events, secret, guard, loop, start_at, end_at)
    except Exception as exc:
        failed = failure(exc)
        if failed is None:
            raise
        raise failed from exc


def failure(exc: Exception) -> CaldavFailed | None:
    """What a CalDAV call's exception says to the provider (None: not one of ours)."""
    if isinstance(exc, CaldavFailed):
        return exc
    if isinstance(exc, Refused):
        return CaldavFailed(f"refused: {exc.reason}")
    if isinstance(exc, TooLarge):
        return CaldavFailed(f"an answer is larger than {exc.limit} bytes")
    from caldav.lib import error as caldav_errors  # here, not at the top: the docstring

    if isinstance(exc, caldav_errors.AuthorizationError):
        return CaldavFailed("the server refused the username or password")
    if isinstance(exc, caldav_errors.NotFoundError):
        return CaldavFailed("no such calendar on the server")
    if isinstance(exc, caldav_errors.DAVError | httpx.HTTPError | TimeoutError | OSError):
        return CaldavFailed(f"{type(exc).__name__}: {exc}"[:500])
    return None

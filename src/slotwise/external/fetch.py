"""An iCalendar address read through the outbound guard, with a conditional request.

The guard resolves the host and refuses a non-public address (unless the operator allows
it), connects to the very address it checked, follows no redirect, and stops at the size
cap (``SLOTWISE_CALENDAR_MAX_BYTES``) and the timeouts. A calendar that answers 304 Not
Modified to the validators of the last good answer (``If-None-Match``, ``If-Modified-Since``)
keeps the busy time that answer gave.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from slotwise.outbound import OutboundGuard, Refused, TooLarge

USER_AGENT = "Slotwise-Calendar/1"


class FetchFailed(Exception):
    """The calendar could not be read: the reason is shown to its provider."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    etag: str | None
    last_modified: str | None


class NotModified:
    """304: the calendar is as the last good answer had it."""


NOT_MODIFIED = NotModified()


async def fetch(
    guard: OutboundGuard, url: str, *, etag: str | None, last_modified: str | None
) -> Fetched | NotModified:
    headers = {"user-agent": USER_AGENT, "accept": "text/calendar, */*;q=0.5"}
    if etag:
        headers["if-none-match"] = etag
    if last_modified:
        headers["if-modified-since"] = last_modified
    try:
        answer = await guard.send("GET", url, headers=headers)
    except Refused as refused:
        raise FetchFailed(f"refused: {refused.reason}") from refused
    except TooLarge as too_large:
        raise FetchFailed(f"the calendar is larger than {too_large.limit} bytes") from too_large
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        raise FetchFailed(f"{type(exc).__name__}: {exc}"[:500] or "the call failed") from exc
    if answer.status_code == 304 and (etag or last_modified):
        return NOT_MODIFIED
    if 300 <= answer.status_code < 400:
        raise FetchFailed(f"HTTP {answer.status_code}: a redirect (not followed)")
    if answer.status_code != 200:
        raise FetchFailed(f"HTTP {answer.status_code}")
    return Fetched(answer.body, answer.headers.get("etag"), answer.headers.get("last-modified"))

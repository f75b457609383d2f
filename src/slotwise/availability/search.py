"""A search across providers: every matching provider's open slots, merged in time order.

There is no second way of computing slots here. Each provider's slots are its own
listing's answer (`SlotListings.answer`: kept in this worker's slot cache, brought up to
date by bookings as a single listing is, computed by the same functions when it is not
kept), cut to the booking policy at `now` as its body would be (`bookable_range`). The
search only chooses whose listings to read, cuts them to the window, merges them by start
and pages the result with a cursor.

Without `tz`, `from` and `to` are each provider's own local dates, exactly as its listing
reads them. With `tz` they are the client's dates: each provider's listing is read for a
window two days wider on either side (zones differ by up to 26 hours), and cut to the
instants of the client's dates.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import itertools
import json
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import dates, scheduling
from slotwise.availability.cache import SlotAnswer
from slotwise.availability.ranking import Ranker, offered, scored
from slotwise.availability.schemas import SlotQuery
from slotwise.availability.search_schemas import (
    SearchOrder,
    SearchProvider,
    SearchService,
    SlotSearchQuery,
)
from slotwise.availability.slots import InvalidWindow, SlotListings
from slotwise.errors import AppError
from slotwise.providers import repository as providers_repo
from slotwise.providers import service as providers_service
from slotwise.scheduling import ranking

DEFAULT_DAYS = 7
# Listings computed at once: enough to overlap their reads (docs/benchmarks.md has the
# measurements), half the default pool at most, so that a search leaves connections to the
# other requests of the worker.
CONCURRENT_READS = 10
# Zones differ by up to 26 hours (UTC-12 to UTC+14): a client's date reaches this many of a
# provider's dates either side of the same date.
ZONE_REACH = timedelta(days=2)
CURSOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Caps on one search (settings `search_max_providers`, `search_max_days`)."""

    max_providers: int
    max_days: int


class SearchFilterRequired(AppError):  # 400: a search of everyone is not a search
    code = "search_filter_required"
    message = "Give at least one of service, specialty or q."


class SearchTooBroad(AppError):
    code = "search_too_broad"
    message = "More providers match than a search reads (details.max_providers): narrow it."


class SearchWindowTooLong(AppError):
    code = "search_window_too_long"
    message = "A search spans at most details.max_days days."


class InvalidCursor(AppError):
    code = "invalid_cursor"
    message = "This cursor is not one this search gave (give the same query as its page)."


@dataclass(frozen=True, slots=True)
class _Listed:
    """One provider's (and service's) slots in the window, as its listing answered them."""

    order: str  # breaks ties between equal starts: provider id, service id
    head: bytes  # the item's JSON up to the slot's own fields
    starts_at: list[datetime]
    items: list[bytes]
    answer: SlotAnswer  # what they were cut from (starting at ``lo``): what ranking reads
    lo: int
    name: str


async def search(
    session: AsyncSession,
    listings: SlotListings,
    *,
    query: SlotSearchQuery,
    limits: SearchLimits,
    now: datetime,
    history: ranking.History | None = None,
    ranker: Ranker | None = None,
) -> bytes:
    """The page of open slots `query` asks for, as the JSON body of `SlotSearchRead`; with
    `order=best`, the best ``limit`` of them by ``ranker`` for the client of ``history``."""
    if not (query.service or query.specialty or query.q):
        raise SearchFilterRequired()
    first = query.first
    last = query.last if query.last is not None else _days_after(first, DEFAULT_DAYS - 1)
    if last < first:
        raise InvalidWindow("to is before from.")
    if (last - first).days + 1 > limits.max_days:
        raise SearchWindowTooLong(details={"max_days": limits.max_days})
    fingerprint = _fingerprint(query, first, last)
    if query.cursor and query.order is SearchOrder.BEST:
        raise InvalidCursor("The best slots come in one page: order=best takes no cursor.")
    after = _read_cursor(query.cursor, fingerprint) if query.cursor else None
    rows = await providers_repo.bookable_offers(
        session,
        service=_service_ref(query.service),
        specialty=query.specialty,
        text=query.q,
        limit=limits.max_providers + 1,
    )
    if len(rows) > limits.max_providers:
        raise SearchTooBroad(details={"max_providers": limits.max_providers})
    span = instants(first, last, query.tz)
    window = (first, last) if span is None else widened(first, last)
    reads = asyncio.Semaphore(CONCURRENT_READS)
    found = await asyncio.gather(
        *(_listed(listings, row, window, query.tz, span, now, reads) for row in rows)
    )
    listed = [one for one in found if one]
    if query.order is SearchOrder.BEST:
        best = _best(listed, history, ranker, first, last, query.limit, now)
        page, next_cursor = [(at, order, item) for at, order, item in best], None
    else:
        page = list(itertools.islice(_merged(listed, after), query.limit + 1))
        more = len(page) > query.limit
        page = page[: query.limit]
        next_cursor = _cursor(fingerprint, page[-1][0], page[-1][1]) if more else None
    return b"".join(
        (
            b'{"from_date":"',
            first.isoformat().encode(),
            b'","to_date":"',
            last.isoformat().encode(),
            b'","client_timezone":',
            json.dumps(query.tz).encode(),
            b',"providers":',
            str(len(rows)).encode(),
            b',"items":[',
            b",".join(item for _start, _order, item in page),
            b'],"next_cursor":',
            json.dumps(next_cursor).encode(),
            b"}",
        )
    )


async def admitted(
    listings: SlotListings,
    ref: str,
    query: SlotQuery,
    span: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[SlotAnswer, int, int]:
    """The provider's listing (``query``) and the range of its slots offered at `now` that
    start within ``span`` (None: all of them). Its errors are the listing's."""
    answer = await listings.answer(ref, query, now)
    starts_at = answer.starts_at
    bookable = scheduling.bookable_range(starts_at, answer.policy, now)
    lo, hi = bookable.start, bookable.stop
    if span is not None:
        lo = max(lo, bisect_left(starts_at, span[0]))
        hi = min(hi, bisect_left(starts_at, span[1]))
    return answer, lo, max(lo, hi)


async def open_between(
    listings: SlotListings,
    ref: str,
    query: SlotQuery,
    span: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[list[datetime], list[bytes]]:
    """The starts and JSON of those slots (``admitted``)."""
    answer, lo, hi = await admitted(listings, ref, query, span, now)
    return answer.starts_at[lo:hi], answer.items[lo:hi]


def listing_query(
    window: tuple[date, date], service_id: uuid.UUID | None, tz: str | None
) -> SlotQuery:
    """A listing's query of validated values (`window` within the listing's limits)."""
    return SlotQuery.model_construct(
        on_date=None,
        first=window[0],
        last=window[1],
        service_id=service_id,
        tz=tz,
        slot_duration=None,
    )


async def _listed(
    listings: SlotListings,
    row: RowMapping,
    window: tuple[date, date],
    tz: str | None,
    span: tuple[datetime, datetime] | None,
    now: datetime,
    reads: asyncio.Semaphore,
) -> _Listed | None:
    """The provider's listing of the window (None: it can no longer be listed, or no longer
    offers the service: changed since it was matched)."""
    service_id = row["service_id"]
    try:
        async with reads:
            answer, lo, hi = await admitted(
                listings, row["public_handle"], listing_query(window, service_id, tz), span, now
            )
    except (providers_service.ProviderNotFound, providers_service.ServiceNotFound):
        return None
    if lo >= hi:
        return None
    provider = SearchProvider(
        id=row["provider_id"],
        public_handle=row["public_handle"],
        full_name=row["full_name"],
        timezone=row["timezone"],
    )
    service = (
        None
        if service_id is None
        else SearchService(
            id=service_id, name=row["service_name"], duration_minutes=row["duration_minutes"]
        )
    )
    head = b"".join(
        (
            b'{"provider":',
            provider.model_dump_json().encode(),
            b',"service":',
            b"null" if service is None else service.model_dump_json().encode(),
            b",",
        )
    )
    return _Listed(
        order=f"{row['provider_id']}/{service_id or ''}",
        head=head,
        starts_at=answer.starts_at[lo:hi],
        items=answer.items[lo:hi],
        answer=answer,
        lo=lo,
        name=row["full_name"],
    )


def _merged(
    found: list[_Listed], after: tuple[datetime, str] | None
) -> Iterator[tuple[datetime, str, bytes]]:
    """Every slot of every listing, by start and then listing, from just after ``after``."""

    def each(listed: _Listed) -> Iterator[tuple[datetime, str, bytes]]:
        starts_at, start = listed.starts_at, 0
        if after is not None:
            # Past the cursor: a later start, or the same start in a later listing.
            cut = bisect_right if listed.order <= after[1] else bisect_left
            start = cut(starts_at, after[0])
        for index in range(start, len(starts_at)):
            yield starts_at[index], listed.order, listed.head + listed.items[index][1:]

    return heapq.merge(*(each(listed) for listed in found))


def _best(
    listed: list[_Listed],
    history: ranking.History | None,
    ranker: Ranker | None,
    first: date,
    last: date,
    limit: int,
    now: datetime,
) -> list[tuple[datetime, str, bytes]]:
    """The best ``limit`` slots of every listing, each with its score and reasons: the
    providers' loads compared (the balance rule), the client's history read."""
    if ranker is None:
        ranker = Ranker(ranking.RankingWeights())
    slots: list[ranking.Offered] = []
    whose: list[tuple[_Listed, int]] = []
    for one in listed:
        found = offered(one.answer, one.lo, one.lo + len(one.starts_at), now, one.name)
        slots.extend(found)
        whose.extend((one, index) for index in range(len(found)))
    at = {id(slot): spot for slot, spot in zip(slots, whose, strict=True)}
    best = ranker.rank(slots, history or ranking.History(), first=first, last=last, now=now)
    chosen = []
    for ranked in best[:limit]:
        one, index = at[id(ranked.slot)]
        item = one.head + scored(one.items[index], ranked)[1:]
        chosen.append((ranked.slot.start_at, one.order, item))
    return chosen


def _service_ref(service: str | None) -> str | uuid.UUID | None:
    if service is None:
        return None
    try:
        return uuid.UUID(service)
    except ValueError:
        return service


def _days_after(first: date, days: int) -> date:
    return min(first + timedelta(days=days), dates.LAST_DATE)


def widened(first: date, last: date) -> tuple[date, date]:
    return max(first - ZONE_REACH, dates.FIRST_DATE), min(last + ZONE_REACH, dates.LAST_DATE)


def instants(first: date, last: date, tz: str | None) -> tuple[datetime, datetime] | None:
    """The instants of the client's dates ``first`` to ``last`` in ``tz`` (None: no zone)."""
    if tz is None:
        return None
    zone = ZoneInfo(tz)
    return (
        scheduling.day_extent(first, zone).start_at,
        scheduling.day_extent(last, zone).end_at,
    )


# -- the cursor: where a page ended, for the same query --------------------------------------


def _fingerprint(query: SlotSearchQuery, first: date, last: date) -> str:
    """What a page's cursor is bound to: the query, pages aside."""
    asked = [
        query.service,
        query.specialty,
        query.q,
        first.isoformat(),
        last.isoformat(),
        query.tz,
        query.order.value,
    ]
    return hashlib.sha256(json.dumps(asked).encode()).hexdigest()[:16]


def _cursor(fingerprint: str, start_at: datetime, order: str) -> str:
    raw = json.dumps([CURSOR_VERSION, fingerprint, start_at.isoformat(), order])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_cursor(cursor: str, fingerprint: str) -> tuple[datetime, str]:
    """The last slot of the page the cursor came from: its start and listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, bound_to, start, order = json.loads(raw)
        start_at = datetime.fromisoformat(start)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None
    if (
        version != CURSOR_VERSION
        or bound_to != fingerprint
        or not isinstance(order, str)
        or start_at.tzinfo is None
    ):
        raise InvalidCursor()
    return start_at, order

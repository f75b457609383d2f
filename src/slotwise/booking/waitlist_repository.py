"""Waitlist entries: small queries, no rules, no commits (``booking.waitlist`` uses them)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from slotwise.booking.models import Appointment, Status, WaitlistEntry, WaitlistStatus
from slotwise.db import transaction_memo
from slotwise.scheduling import Interval

IN_LINE = (WaitlistStatus.WAITING.value, WaitlistStatus.OFFERED.value)
OFFER_HOLDER = "waitlist:"  # an offer's hold: ``held_by`` is this and its entry's id


def holder_of(entry_id: uuid.UUID) -> str:
    return f"{OFFER_HOLDER}{entry_id}"


def entry_of_holder(held_by: str | None) -> uuid.UUID | None:
    """The entry an offer's hold is for (None: not an offer's)."""
    if held_by is None or not held_by.startswith(OFFER_HOLDER):
        return None
    return uuid.UUID(held_by.removeprefix(OFFER_HOLDER))


async def get(
    session: AsyncSession, entry_id: uuid.UUID, *, lock: bool = False
) -> WaitlistEntry | None:
    """The entry, read afresh (after the locks, another transaction may have changed it)."""
    query = select(WaitlistEntry).where(WaitlistEntry.id == entry_id)
    if lock:
        query = query.with_for_update()
    result = await session.execute(query.execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def get_by_token_hash(session: AsyncSession, token_hash: str) -> WaitlistEntry | None:
    result = await session.execute(
        select(WaitlistEntry).where(WaitlistEntry.manage_token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def in_line_for(
    session: AsyncSession, *, provider_id: uuid.UUID, start_at: datetime, client_key: str
) -> WaitlistEntry | None:
    """The client's entry still in line for this start, if any."""
    result = await session.execute(
        select(WaitlistEntry).where(
            WaitlistEntry.provider_id == provider_id,
            WaitlistEntry.start_at == start_at,
            WaitlistEntry.client_key == client_key,
            WaitlistEntry.status.in_(IN_LINE),
        )
    )
    return result.scalars().first()


async def count_in_line(session: AsyncSession, *, provider_id: uuid.UUID, client_key: str) -> int:
    """The client's entries still in line with the provider."""
    count = await session.scalar(
        select(func.count()).where(
            WaitlistEntry.provider_id == provider_id,
            WaitlistEntry.client_key == client_key,
            WaitlistEntry.status.in_(IN_LINE),
        )
    )
    return int(count or 0)


async def next_seq(session: AsyncSession, provider_id: uuid.UUID) -> int:
    """The provider's next place number (read under the provider's lock)."""
    last = await session.scalar(
        select(func.max(WaitlistEntry.seq)).where(WaitlistEntry.provider_id == provider_id)
    )
    return int(last or 0) + 1


async def position(session: AsyncSession, entry: WaitlistEntry) -> int | None:
    """The entry's place in its time's line (1: next), or None once out of line."""
    if entry.status not in IN_LINE:
        return None
    ahead = await session.scalar(
        select(func.count()).where(
            WaitlistEntry.provider_id == entry.provider_id,
            WaitlistEntry.start_at == entry.start_at,
            WaitlistEntry.status.in_(IN_LINE),
            WaitlistEntry.seq < entry.seq,
        )
    )
    return int(ahead or 0) + 1


async def waiting_for(
    session: AsyncSession, freed: Mapping[uuid.UUID, list[Interval]], *, limit: int
) -> dict[uuid.UUID, list[WaitlistEntry]]:
    """For each provider of ``freed``, its waiting entries whose blocked time overlaps any
    of its spans, at most the first ``limit`` in line for each span, in line order (one
    query however many providers and spans: a batch's cancellations hand their times on
    together)."""
    pairs = [(provider_id, span) for provider_id, spans in freed.items() for span in spans]
    found: dict[uuid.UUID, list[WaitlistEntry]] = {provider_id: [] for provider_id in freed}
    if not pairs:
        return found
    values: dict[str, Any] = {"limit": limit}
    for number, (provider_id, span) in enumerate(pairs):
        values[f"provider_{number}"] = provider_id
        values[f"start_{number}"], values[f"end_{number}"] = span.start_at, span.end_at
    for entry in (await session.execute(_waiting_for(len(pairs)), values)).scalars():
        found[entry.provider_id].append(entry)
    return found


def anyone_waits(
    provider_id: ColumnElement[uuid.UUID] | QueryableAttribute[uuid.UUID],
) -> ColumnElement[bool]:
    """Whether anyone is in the provider's line (a waiting entry), as a column: asked along
    with a statement that reads the provider's rows anyway (``note_lines``)."""
    return select(WaitlistEntry.id).where(*_waiting_with(provider_id)).exists()


def _waiting_with(
    provider_id: ColumnElement[uuid.UUID] | QueryableAttribute[uuid.UUID],
) -> list[ColumnElement[bool]]:
    """The provider's entries in line for a freed time: ``waiting_for`` reads them, and
    ``anyone_waits`` says whether there are any (one notion, or an empty line could hide
    one that ``waiting_for`` would hand a time to)."""
    return [
        WaitlistEntry.provider_id == provider_id,
        WaitlistEntry.status == WaitlistStatus.WAITING.value,
    ]


def note_lines(session: AsyncSession, lines: Mapping[uuid.UUID, bool]) -> None:
    """What a statement found of these providers' lines (``anyone_waits``), kept for the
    rest of the transaction. Only for a statement after which nobody can join those lines
    until the transaction ends: one under the providers' booking locks (joining a line
    takes the provider's: ``booking.waitlist``), or any of SQLite's write transactions
    (BEGIN IMMEDIATE holds the write lock, and joining is a write). A transaction's own
    hand-overs only take entries out of line, so a line found empty stays empty;
    ``booking.waitlist.promote`` then skips it. Nothing is kept from inside a savepoint:
    its rollback may release a lock taken in it, or put back an entry it took out of line."""
    if session.in_nested_transaction():
        return
    empty = transaction_memo(session, _NOBODY_WAITS)
    for provider_id, waits in lines.items():
        if waits:  # the latest look wins (it cannot find someone in a line found empty)
            empty.pop(provider_id, None)
        else:
            empty[provider_id] = None


def nobody_waits(session: AsyncSession) -> set[uuid.UUID]:
    """The providers this transaction found with nobody in line (``note_lines``)."""
    return set(transaction_memo(session, _NOBODY_WAITS))


_NOBODY_WAITS = "slotwise.booking.nobody_waits"  # ``transaction_memo``: provider id -> None


@lru_cache(maxsize=32)
def _waiting_for(pairs: int) -> Select[WaitlistEntry]:
    """``waiting_for``'s statement for this many (provider, span) pairs (``provider_<n>``,
    ``start_<n>``, ``end_<n>``), built once: building it, and its cache key, cost a
    cancellation more than running it."""
    firsts = [
        select(WaitlistEntry.id)
        .where(
            *_waiting_with(bindparam(f"provider_{number}")),
            WaitlistEntry.blocked_start_at < bindparam(f"end_{number}"),
            WaitlistEntry.blocked_end_at > bindparam(f"start_{number}"),
        )
        .order_by(WaitlistEntry.seq)
        .limit(bindparam("limit", type_=Integer))
        .subquery()
        for number in range(pairs)
    ]
    ids = [select(first.c.id) for first in firsts]
    chosen = union_all(*ids) if len(ids) > 1 else ids[0]
    return (
        select(WaitlistEntry)
        .where(WaitlistEntry.id.in_(chosen))
        .order_by(WaitlistEntry.seq)
        .execution_options(populate_existing=True)
    )


async def in_line_for_session(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    service_id: uuid.UUID | None,
    start_at: datetime,
) -> list[WaitlistEntry]:
    """The entries waiting for, or holding an offer of, a seat of the provider's session of
    ``service_id`` starting at ``start_at``."""
    result = await session.execute(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.provider_id == provider_id,
            WaitlistEntry.service_id == service_id,
            WaitlistEntry.start_at == start_at,
            WaitlistEntry.status.in_([WaitlistStatus.WAITING.value, WaitlistStatus.OFFERED.value]),
        )
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def session_holds(session: AsyncSession, *, session_key: uuid.UUID) -> list[Appointment]:
    """The held seats (holds, waiters' offers) of a group session."""
    found = await session.scalars(
        select(Appointment).where(
            Appointment.session_key == session_key, Appointment.status == Status.HELD
        )
    )
    return list(found)


async def ended_offers(
    session: AsyncSession, *, provider_id: uuid.UUID, now: datetime
) -> list[WaitlistEntry]:
    result = await session.execute(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.provider_id == provider_id,
            WaitlistEntry.status == WaitlistStatus.OFFERED.value,
            WaitlistEntry.offer_until <= now,
        )
        .order_by(WaitlistEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def offer_hold(session: AsyncSession, entry_id: uuid.UUID) -> Appointment | None:
    """The hold an offer made for this entry, while it is one (not yet booked)."""
    result = await session.execute(
        select(Appointment)
        .where(Appointment.held_by == holder_of(entry_id), Appointment.status == Status.HELD)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


def _lapsed_hold_with_waiters(now: datetime) -> ColumnElement[bool]:
    """Held rows (guests' unverified bookings and holds) past their end that overlap a
    waiting entry of their provider."""
    return and_(
        Appointment.status.in_([Status.HELD, Status.PENDING_VERIFICATION]),
        Appointment.hold_until <= now,
        WaitlistEntry.provider_id == Appointment.provider_id,
        WaitlistEntry.status == WaitlistStatus.WAITING.value,
        WaitlistEntry.blocked_start_at < Appointment.blocked_end_at,
        WaitlistEntry.blocked_end_at > Appointment.blocked_start_at,
    )


async def lapsed_holds_with_waiters(
    session: AsyncSession, *, provider_id: uuid.UUID, now: datetime
) -> list[Interval]:
    """The blocked spans of the provider's lapsed holds that waiters wait for."""
    result = await session.execute(
        select(Appointment.blocked_start_at, Appointment.blocked_end_at)
        .distinct()
        .where(Appointment.provider_id == provider_id, _lapsed_hold_with_waiters(now))
    )
    return [Interval(start_at, end_at) for start_at, end_at in result.all()]


async def providers_to_sweep(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Providers with an offer past its end, or a lapsed hold that waiters wait for."""
    offers = select(WaitlistEntry.provider_id).where(
        WaitlistEntry.status == WaitlistStatus.OFFERED.value, WaitlistEntry.offer_until <= now
    )
    lapsed = select(Appointment.provider_id).where(_lapsed_hold_with_waiters(now))
    result = await session.execute(offers.union(lapsed))
    return sorted(result.scalars())


async def page_for_provider(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    start_from: datetime,
    start_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[WaitlistEntry], int]:
    """The provider's entries in line for times starting in [start_from, start_to)."""
    query = select(WaitlistEntry).where(
        WaitlistEntry.provider_id == provider_id,
        WaitlistEntry.status.in_(IN_LINE),
        WaitlistEntry.start_at >= start_from,
    )
    if start_to is not None:
        query = query.where(WaitlistEntry.start_at < start_to)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(WaitlistEntry.start_at, WaitlistEntry.seq).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)

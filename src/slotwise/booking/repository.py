from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeEngine

from slotwise.availability import changes
from slotwise.booking.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentEvent,
    ClientStanding,
    Status,
)
from slotwise.db import Unnested, insert_rows, padded, table_of, unnested
from slotwise.notifications.models import OutboxMessage
from slotwise.providers.models import Provider

# The longest blocked span an appointment can have (12 h session + 2 x 4 h buffers), so
# that a window query can be an index range scan on (provider_id, blocked_start_at).
LONGEST_BLOCK = timedelta(hours=21)


def _active() -> ColumnElement[bool]:
    """Appointments that take time: the active statuses and held guest bookings, as the
    exclusion constraints count them. A write releases the expired holds it could meet
    first (``release_expired``); a listing, which writes nothing, skips them
    (``booking.busy``).
    """
    # The statuses as constants in the SQL: a list of parameters would be an "expanding"
    # IN, whose statement text SQLAlchemy rewrites at every execution.
    return Appointment.status.in_([literal_column(f"'{status}'") for status in HOLDING_STATUSES])


_HELD: ColumnElement[Any] = literal_column(f"'{Status.PENDING_VERIFICATION}'")


def _blocking(
    provider_id: object, start_at: object, end_at: object, earliest: object
) -> tuple[ColumnElement[bool], ...]:
    """The provider's active appointments whose blocked span overlaps [start_at, end_at);
    ``earliest`` is start_at - LONGEST_BLOCK. Values, or bound parameters of a statement
    built once."""
    return (
        Appointment.provider_id == provider_id,
        Appointment.blocked_start_at >= earliest,
        Appointment.blocked_start_at < end_at,
        Appointment.blocked_end_at > start_at,
        _active(),
    )


async def release_expired(
    session: AsyncSession, bookings: list[tuple[uuid.UUID, str]], *, now: datetime
) -> None:
    """Cancel the held guest bookings past their ``hold_until`` of these providers and
    clients ((provider id, client key) pairs), with their history: run by a booking's
    write after its locks, before its check, so an expired hold never refuses it (the
    exclusion constraints, which cannot read the clock, count a hold until it is released).
    """
    providers = sorted({provider_id for provider_id, _ in bookings})
    clients = sorted({client_key for _, client_key in bookings})
    connection = await session.connection()
    released = (
        await connection.execute(
            _RELEASE,
            {"providers": providers, "clients": clients, "now": now},
        )
    ).all()
    if not released:
        return
    await connection.execute(
        _INSERT_EVENTS,
        [
            {
                "id": uuid.uuid4(),
                "appointment_id": appointment_id,
                "at": now,
                "actor_id": None,
                "actor_role": "system",
                "action": "status_changed",
                "from_status": Status.PENDING_VERIFICATION.value,
                "to_status": Status.CANCELLED.value,
                "from_start_at": None,
                "to_start_at": None,
                "reason": HOLD_EXPIRED,
            }
            for appointment_id, _ in released
        ],
    )
    for _, provider_id in released:
        changes.note(session.sync_session, provider_id)


HOLD_EXPIRED = "The guest did not verify their email in time."
_RELEASE = (
    update(Appointment)
    .where(
        Appointment.status == _HELD,
        Appointment.hold_until <= bindparam("now"),
        or_(
            Appointment.provider_id.in_(bindparam("providers", expanding=True)),
            Appointment.client_key.in_(bindparam("clients", expanding=True)),
        ),
    )
    .values(
        status=Status.CANCELLED,
        cancel_reason=HOLD_EXPIRED,
        sequence=Appointment.sequence + 1,
        updated_at=bindparam("now"),
    )
    .returning(Appointment.id, Appointment.provider_id)
)
_INSERT_EVENTS = insert(AppointmentEvent)


def _one(where: ColumnElement[bool], *, lock: bool) -> Select[Appointment]:
    query = select(Appointment).where(where).options(selectinload(Appointment.events))
    # A change locks the row (PostgreSQL), so two concurrent changes apply one after the
    # other and the second sees the first's status. SQLite's BEGIN IMMEDIATE does the same.
    return query.with_for_update(of=Appointment) if lock else query


async def get(
    session: AsyncSession, appointment_id: uuid.UUID, *, lock: bool = False
) -> Appointment | None:
    return await session.scalar(_one(Appointment.id == appointment_id, lock=lock))


async def get_by_verify_token_hash(
    session: AsyncSession, token_hash: str, *, lock: bool = False
) -> Appointment | None:
    return await session.scalar(_one(Appointment.verify_token_hash == token_hash, lock=lock))


async def get_by_token_hash(
    session: AsyncSession, token_hash: str, *, lock: bool = False
) -> Appointment | None:
    return await session.scalar(_one(Appointment.manage_token_hash == token_hash, lock=lock))


def visible_to(
    *, client_id: uuid.UUID | None, provider_id: uuid.UUID | None, everyone: bool
) -> ColumnElement[bool]:
    if everyone:
        return true()
    clauses = []
    if client_id is not None:
        clauses.append(Appointment.client_id == client_id)
    if provider_id is not None:
        clauses.append(Appointment.provider_id == provider_id)
    return or_(*clauses) if clauses else false()


async def page(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    statuses: list[Status] | None,
    start_from: datetime | None,
    start_to: datetime | None,
    provider_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Appointment], int]:
    query: Select[Appointment] = select(Appointment).where(visible)
    if statuses:
        query = query.where(Appointment.status.in_(statuses))
    if start_from is not None:
        query = query.where(Appointment.start_at >= start_from)
    if start_to is not None:
        query = query.where(Appointment.start_at < start_to)
    if provider_id is not None:
        query = query.where(Appointment.provider_id == provider_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.options(selectinload(Appointment.events))
        .order_by(Appointment.start_at, Appointment.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def standing(session: AsyncSession, email: str) -> ClientStanding | None:
    return await session.get(ClientStanding, email.lower())


async def standings_page(
    session: AsyncSession, *, blocked: bool | None, limit: int, offset: int
) -> tuple[list[ClientStanding], int]:
    query = select(ClientStanding)
    if blocked is not None:
        query = query.where(ClientStanding.blocked == blocked)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(ClientStanding.email).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def lock_bookings(session: AsyncSession, bookings: list[tuple[uuid.UUID, str]]) -> None:
    """Serialise bookings of one provider and of one client (PostgreSQL; on SQLite the
    write lock taken by BEGIN IMMEDIATE already does). ``bookings``: (provider id, client
    key) pairs, one or many written in the same transaction.

    Concurrent inserts that conflict on an exclusion constraint can wait on each other and
    deadlock; two constraints (provider, client) make it likelier. Taking the providers'
    locks, then the clients' — each in sorted order, so that every transaction takes them
    in one global order — before the check means conflicting writers queue instead. The
    constraints stay as the guarantee; the locks make its refusals orderly 409s.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    connection = await session.connection()  # Core statements: no ORM execution to pay for
    await connection.execute(_LOCK_BOOKINGS, _lock_keys(bookings))


def _lock_keys(bookings: list[tuple[uuid.UUID, str]]) -> dict[str, list[Any]]:
    """The providers' locks, then the clients', each in sorted order (``lock_bookings``)."""
    providers = sorted({str(provider_id) for provider_id, _ in bookings})
    clients = sorted({client_key for _, client_key in bookings})
    return {
        "lock_keys": providers + clients,
        "lock_seeds": [1] * len(providers) + [2] * len(clients),
    }


# The locks are taken in the arrays' order (a function scan's rows).
_LOCKS = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended(key, seed))) AS taken"
    " FROM unnest(CAST(:lock_keys AS text[]), CAST(:lock_seeds AS bigint[])) AS lock(key, seed)"
)
_LOCK_BOOKINGS = text(_LOCKS)  # one round trip


@dataclass(frozen=True, slots=True)
class Conflicts:
    provider_busy: bool
    client_busy: bool
    client_blocked: bool
    rules_version: int | None  # the provider's, now (None: the provider is gone)
    # A guest's bookings with the provider that take time and start after ``since`` (0
    # when not asked).
    guest_bookings: int = 0


@dataclass(frozen=True, slots=True)
class Asked:
    """A time to check for conflicts (``conflicts_among``)."""

    provider_id: uuid.UUID
    client_key: str
    start_at: datetime
    end_at: datetime
    blocked_start_at: datetime
    blocked_end_at: datetime
    # A guest's booking: count its bookings with the provider starting after this instant.
    since: datetime | None = None


async def conflicts(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    client_key: str,
    start_at: datetime,
    end_at: datetime,
    blocked_start_at: datetime,
    blocked_end_at: datetime,
    exclude_id: uuid.UUID | None = None,
    standing: bool = False,
    since: datetime | None = None,
) -> Conflicts:
    """In one query: does an active appointment of the provider overlap the blocked span, or
    one of the client's overlap the appointment; (``standing``) is the client blocked; what
    is the provider's rules version; and (``since``, a guest's booking) how many bookings
    the client has with the provider starting after ``since``?"""
    asked = Asked(
        provider_id, client_key, start_at, end_at, blocked_start_at, blocked_end_at, since
    )
    query = _conflicts_query(1, excluding=exclude_id is not None, standing=standing)
    values = _conflict_values(asked, "_0")
    values["exclude_id"] = exclude_id
    connection = await session.connection()
    return _read_conflicts((await connection.execute(query, values)).one(), 1)[0]


async def conflicts_among(session: AsyncSession, many: list[Asked]) -> list[Conflicts]:
    """``conflicts`` (with the client's standing) for several new bookings in one query."""
    if not many:
        return []
    connection = await session.connection()
    if connection.dialect.name == "postgresql":  # the times as arrays, a row each
        arrays = {name: [getattr(asked, name) for asked in many] for name, _ in _ASKED_FIELDS}
        rows = (await connection.execute(_CONFLICTS_UNNESTED, arrays)).all()
        return [_read_conflicts(row, 1)[0] for row in rows]
    asking = padded(many)
    query = _conflicts_query(len(asking), excluding=False, standing=True)
    values: dict[str, Any] = {}
    for i, asked in enumerate(asking):
        values.update(_conflict_values(asked, f"_{i}"))
    return _read_conflicts((await connection.execute(query, values)).one(), len(many))


def _conflict_values(asked: Asked, suffix: str) -> dict[str, Any]:
    values = {
        "provider_id": asked.provider_id,
        "version_of": asked.provider_id,
        "blocked_start_at": asked.blocked_start_at,
        "blocked_end_at": asked.blocked_end_at,
        "earliest": asked.blocked_start_at - LONGEST_BLOCK,
        "client_key": asked.client_key,
        "standing_of": asked.client_key,
        "start_at": asked.start_at,
        "end_at": asked.end_at,
        "since": asked.since,
        "counted_of": asked.provider_id,
    }
    return {name + suffix: value for name, value in values.items()}


ANSWERS = 5  # the columns of the answers about one asked time (``_answers``)


def _read_conflicts(row: Any, count: int) -> list[Conflicts]:
    return [
        Conflicts(
            provider_busy=bool(row[ANSWERS * i]),
            client_busy=bool(row[ANSWERS * i + 1]),
            client_blocked=bool(row[ANSWERS * i + 2]),
            rules_version=row[ANSWERS * i + 3],
            guest_bookings=int(row[ANSWERS * i + 4] or 0),
        )
        for i in range(count)
    ]


# Batches are asked about padded (db.padded): a dozen sizes, each built once.
@cache
def _conflicts_query(count: int, *, excluding: bool, standing: bool) -> Select[Any]:
    """The conflicts statement for ``count`` times (ANSWERS columns each), built once per
    variant: building it costs more than running it."""
    columns: list[ColumnElement[Any]] = []
    for i in range(count):
        columns.extend(_conflict_columns(f"_{i}", excluding=excluding, standing=standing))
    return select(*columns)


def _conflict_columns(
    suffix: str, *, excluding: bool, standing: bool
) -> tuple[ColumnElement[Any], ...]:
    def param(name: str) -> Any:
        return bindparam(name + suffix)

    return _answers(
        provider_id=param("provider_id"),
        client_key=param("client_key"),
        start_at=param("start_at"),
        end_at=param("end_at"),
        blocked_start_at=param("blocked_start_at"),
        blocked_end_at=param("blocked_end_at"),
        earliest=param("earliest"),
        version_of=param("version_of"),
        since=param("since"),
        counted_of=param("counted_of"),
        standing_of=param("standing_of") if standing else None,
        exclude_id=bindparam("exclude_id") if excluding else None,
    )


def _answers(
    *,
    provider_id: Any,
    client_key: Any,
    start_at: Any,
    end_at: Any,
    blocked_start_at: Any,
    blocked_end_at: Any,
    earliest: Any,
    version_of: Any,
    since: Any,
    counted_of: Any,
    standing_of: Any | None,
    exclude_id: Any | None,
) -> tuple[ColumnElement[Any], ...]:
    """The ANSWERS answers about one asked time (bound parameters, or the columns of the
    unnested times): does an active appointment of the provider block it, does one of the
    client's overlap it, is the client blocked (only if ``standing_of`` is given), the
    provider's rules version, and how many of the client's bookings with the provider take
    time and start after ``since`` (none when ``since`` is null: asked for guests only)."""
    provider_busy = select(Appointment.id).where(
        *_blocking(provider_id, blocked_start_at, blocked_end_at, earliest)
    )
    client_busy = select(Appointment.id).where(
        Appointment.client_key == client_key,
        Appointment.start_at < end_at,
        Appointment.end_at > start_at,
        _active(),
    )
    if exclude_id is not None:
        provider_busy = provider_busy.where(Appointment.id != exclude_id)
        client_busy = client_busy.where(Appointment.id != exclude_id)
    blocked = (
        exists().where(ClientStanding.email == standing_of, ClientStanding.blocked)
        if standing_of is not None
        else false()
    )
    version = select(Provider.rules_version).where(Provider.id == version_of)
    counted = select(func.count()).where(
        Appointment.client_key == client_key,
        Appointment.start_at > since,
        Appointment.provider_id == counted_of,
        _active(),
    )
    return (
        provider_busy.exists(),
        client_busy.exists(),
        blocked,
        version.scalar_subquery(),
        counted.scalar_subquery(),
    )


# The fields of an Asked time, and the type of each, as conflicts_among sends them.
_INSTANT: TypeEngine[Any] = DateTime(timezone=True)
_ASKED_FIELDS: list[tuple[str, TypeEngine[Any]]] = [
    ("provider_id", Uuid()),
    ("client_key", Text()),
    ("start_at", _INSTANT),
    ("end_at", _INSTANT),
    ("blocked_start_at", _INSTANT),
    ("blocked_end_at", _INSTANT),
    ("since", _INSTANT),
]


def _conflicts_unnested() -> Select[Any]:
    """``conflicts_among`` on PostgreSQL: the asked times sent as one array per field and
    unnested, the ANSWERS answers a row per time, in order. One statement text and one plan
    whatever the count (the padded form sends nine parameters a time)."""
    arrays = (cast(bindparam(name), postgresql.ARRAY(kind)) for name, kind in _ASKED_FIELDS)
    asked = (
        func.unnest(*arrays)
        .table_valued(*(column(name, kind) for name, kind in _ASKED_FIELDS), with_ordinality="n")
        .render_derived(name="asked")
    )
    a = asked.c
    answers = _answers(
        provider_id=a.provider_id,
        client_key=a.client_key,
        start_at=a.start_at,
        end_at=a.end_at,
        blocked_start_at=a.blocked_start_at,
        blocked_end_at=a.blocked_end_at,
        earliest=a.blocked_start_at - literal(LONGEST_BLOCK),
        version_of=a.provider_id,
        since=a.since,
        counted_of=a.provider_id,
        standing_of=a.client_key,
        exclude_id=None,
    )
    return select(*answers).select_from(asked).order_by(a.n)


_CONFLICTS_UNNESTED = _conflicts_unnested()

_APPOINTMENTS = table_of(Appointment)
_EVENTS = table_of(AppointmentEvent)
_MESSAGES = table_of(OutboxMessage)


async def insert_new(
    session: AsyncSession, appointments: list[Appointment], messages: list[dict[str, Any]]
) -> None:
    """New appointments, their history and their messages (outbox rows), as plain INSERTs
    (on PostgreSQL one statement, ``db.insert_rows``): the ORM's unit of work cost more than
    the statements. The objects stay transient (``db.unsaved``: the answer and the messages
    read them); every column must be set on them."""
    await insert_rows(
        session,
        [
            (_APPOINTMENTS, [_values(appointment, _APPOINTMENTS) for appointment in appointments]),
            (
                _EVENTS,
                [
                    _values(event, _EVENTS)
                    for appointment in appointments
                    for event in appointment.events
                ],
            ),
            (_MESSAGES, messages),
        ],
    )
    for appointment in appointments:
        changes.note(session.sync_session, appointment.provider_id)


def _values(instance: object, table: Table) -> dict[str, Any]:
    """The row of an ``unsaved`` instance, from its ``__dict__`` (the attributes' descriptors
    cost more than the dictionary)."""
    given = vars(instance)
    return {column.key: given[column.key] for column in table.columns}


async def insert_unless_taken(
    session: AsyncSession,
    appointments: list[tuple[Appointment, int]],
    messages: list[dict[str, Any]],
) -> set[uuid.UUID]:
    """PostgreSQL, in one statement (in an autocommit session, one transaction): new
    appointments, each with the rules version its checks were made against, written with
    their history and their messages unless their time is taken; the ids of those written.

    The statement takes the bookings' locks (``lock_bookings``), then inserts each
    appointment whose provider is still at that rules version and whose client is not
    blocked, skipping (ON CONFLICT DO NOTHING) any that an exclusion constraint refuses: an
    overlap with an active appointment of the provider or of the client, committed or
    being written by another transaction, or written earlier in this statement. The history
    and messages of the appointments written go with them; nothing is said of the others,
    which the caller books again alone to learn why (``booking.group``). Any other refusal
    (a foreign key, a deadlock) fails the whole statement and writes nothing."""
    if not appointments:
        return set()
    connection = await session.connection()
    dialect = connection.dialect
    rows = [_values(appointment, _APPOINTMENTS) for appointment, _version in appointments]
    events = [
        _values(event, _EVENTS) for appointment, _ in appointments for event in appointment.events
    ]
    statement, parts = _insert_unless_taken_statement(
        tuple(rows[0]), tuple(events[0]) if events else (), tuple(messages[0]) if messages else ()
    )
    values: dict[str, Any] = _lock_keys(
        [(appointment.provider_id, appointment.client_key) for appointment, _ in appointments]
    )
    for part, part_rows in zip(parts, (rows, events, messages), strict=True):
        if part is not None:
            values.update(part.values(dialect, part_rows))
    values["rules_versions"] = [version for _, version in appointments]
    written = set((await connection.execute(statement, values)).scalars())
    for appointment, _ in appointments:
        if appointment.id in written:
            changes.note(session.sync_session, appointment.provider_id)
    return written


@cache
def _insert_unless_taken_statement(
    appointment_keys: tuple[str, ...], event_keys: tuple[str, ...], message_keys: tuple[str, ...]
) -> tuple[TextualSelect, list[Unnested | None]]:
    """``insert_unless_taken``'s statement for rows with these keys, built once, and the
    arrays of its appointments, history and messages (an empty key tuple: no such rows).

    The locks are a one-row CTE that the appointments are cross-joined with: no appointment
    reaches the INSERT before every lock is held. The version and standing conditions read
    the statement's snapshot; overlaps are the exclusion constraints' to judge, which see
    every row committed or in progress."""
    asked = unnested(_APPOINTMENTS.name, appointment_keys, "a")
    parts: list[Unnested | None] = [asked]
    columns = ", ".join(f"asked.{name}" for name in asked.columns.split(", "))
    providers, standings = table_of(Provider).name, table_of(ClientStanding).name
    # Table and column names from the models' metadata, never from input.
    ctes = [
        f"locks AS ({_LOCKS})",
        f'taken AS (INSERT INTO "{_APPOINTMENTS.name}" ({asked.columns})'  # noqa: S608
        f" SELECT {columns}"
        f" FROM unnest({asked.arrays}, CAST(:rules_versions AS bigint[])) WITH ORDINALITY"
        f" AS asked({asked.columns}, rules_version, n) CROSS JOIN locks"
        f' WHERE EXISTS (SELECT FROM "{providers}" AS p'
        "   WHERE p.id = asked.provider_id AND p.rules_version = asked.rules_version)"
        f' AND NOT EXISTS (SELECT FROM "{standings}" AS s'
        "   WHERE s.email = asked.client_key AND s.blocked)"
        " ORDER BY asked.n"
        " ON CONFLICT DO NOTHING RETURNING id)",
    ]
    for number, (table, keys) in enumerate(((_EVENTS, event_keys), (_MESSAGES, message_keys))):
        if not keys:
            parts.append(None)
            continue
        part = unnested(table.name, keys, f"r{number}")
        parts.append(part)
        ctes.append(
            f'r{number} AS (INSERT INTO "{table.name}" ({part.columns})'  # noqa: S608
            f" SELECT * FROM unnest({part.arrays}) AS given({part.columns})"
            " WHERE given.appointment_id IN (SELECT id FROM taken))"
        )
    statement = text(f"WITH {', '.join(ctes)} SELECT id FROM taken").columns(  # noqa: S608
        column("id", Uuid())
    )
    return statement, parts

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload, selectinload

from slotwise.availability import changes
from slotwise.availability.busy import Moved
from slotwise.booking import waitlist_repository as entries
from slotwise.booking.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentEvent,
    ClientStanding,
    Status,
)
from slotwise.db import one_of, padded, transaction_memo
from slotwise.providers.models import Provider, Service
from slotwise.scheduling import Interval
from slotwise.users.models import User

# The longest blocked span an appointment can have (12 h session + 2 x 4 h buffers), so
# that a window query can be an index range scan on (provider_id, blocked_start_at).
LONGEST_BLOCK = timedelta(hours=21)


def takes_time() -> ColumnElement[bool]:
    """Appointments that take time: the active statuses, held guest bookings and holds, as
    the exclusion constraints count them. A write releases the expired holds it could meet
    first (``lock_and_release``); a listing, which writes nothing, skips them
    (``booking.busy``).
    """
    # The statuses as constants in the SQL: a list of parameters would be an "expanding"
    # IN, whose statement text SQLAlchemy rewrites at every execution.
    return Appointment.status.in_([literal_column(f"'{status}'") for status in HOLDING_STATUSES])


HOLD: ColumnElement[Any] = literal_column(f"'{Status.HELD}'")
# What the release of expired holds takes once its ``hold_until`` has passed: unverified
# guest bookings and holds (``_release``; ``lapsed`` for a row read; ``busy``'s listings).
RELEASED_STATUSES = (Status.PENDING_VERIFICATION, Status.HELD)
RELEASED: list[ColumnElement[Any]] = [literal_column(f"'{one}'") for one in RELEASED_STATUSES]
_CANCELLED: ColumnElement[Any] = literal_column(f"'{Status.CANCELLED}'")


def blocking(
    provider_id: object,
    start_at: object,
    end_at: object,
    earliest: object,
    *,
    ranges: bool = False,
) -> tuple[ColumnElement[bool], ...]:
    """The provider's active appointments whose blocked span overlaps [start_at, end_at);
    ``earliest`` is start_at - LONGEST_BLOCK. Values, or bound parameters of a statement
    built once. ``ranges`` (PostgreSQL): the overlap also as the exclusion constraint writes
    it (``time_range``), so that its GiST index, which the planner picks for being partial
    on the statuses that take time, searches by time and not only by provider."""
    overlap = (
        (
            time_range(Appointment.blocked_start_at, Appointment.blocked_end_at).op("&&")(
                time_range(start_at, end_at)
            ),
        )
        if ranges
        else ()
    )
    return (
        Appointment.provider_id == provider_id,
        Appointment.blocked_start_at >= earliest,
        Appointment.blocked_start_at < end_at,
        Appointment.blocked_end_at > start_at,
        *overlap,
        takes_time(),
    )


def time_range(start_at: object, end_at: object) -> ColumnElement[Any]:
    """PostgreSQL's ``tstzrange(start, end, '[)')``, written as the exclusion constraints
    write it (migrations 0003 and 0011): an index serves only the very same expression."""
    return func.tstzrange(start_at, end_at, _HALF_OPEN, type_=postgresql.TSTZRANGE)


_HALF_OPEN: ColumnElement[Any] = literal_column("'[)'")


class Released(NamedTuple):
    """A hold or an unverified guest booking released by a write (its provider, and the
    blocked time it no longer takes)."""

    provider_id: uuid.UUID
    span: Interval


async def lock_and_release(
    session: AsyncSession,
    providers: Iterable[uuid.UUID],
    clients: Iterable[str],
    *,
    now: datetime,
) -> list[Released]:
    """What a booking's write does first: take the locks of these providers and clients
    (``_ordered``), then release their holds past ``hold_until``: a held guest booking is
    cancelled, with a history row; a hold (``booking.holds``), never a booking, is deleted.
    So an expired hold never refuses a booking (the exclusion constraints, which cannot
    read the clock, count a hold until it is released). On PostgreSQL one statement takes
    the locks and finds (and cancels) the expired holds of both kinds; the judgment that
    follows is a statement of its own, whose snapshot, taken after the locks, sees every
    booking committed before them. Deleting expired holds costs a statement only when there
    are some. What was released is returned, for its time to go to waiters (``write``).

    Nothing is asked when this transaction already took these locks and released these
    providers' and clients' holds at ``now`` or later (a batch's first step, for the writes
    that follow it): under the locks nobody else holds, or releases, their time meanwhile."""
    connection = await session.connection()
    postgresql = connection.dialect.name == "postgresql"
    providers, clients = sorted(set(providers)), sorted(set(clients))
    locks = _ordered(providers, clients)
    if _released_already(session, locks, now=now, postgresql=postgresql):
        return []
    if postgresql:
        values = {**locks, "providers": providers, "clients": clients, "now": now}
        rows = (await connection.execute(_LOCK_AND_RELEASE, values)).all()
        rows = [row for row in rows if row.id is not None]
        _held(session, locks)  # a hand-on after the write asks for none of them again
    else:  # SQLite's write lock, taken by BEGIN IMMEDIATE, already serializes writers
        values = {"providers": padded(providers), "clients": padded(clients), "now": now}
        rows = (await connection.execute(_RELEASE, values)).all()
    _note_released(session, locks, now=now)
    if not rows:
        return []
    freed = [
        Released(row.provider_id, Interval(row.blocked_start_at, row.blocked_end_at))
        for row in rows
    ]
    held = [row for row in rows if row.status == Status.HELD.value]
    if held:
        ids = [row.id for row in held]
        await connection.execute(_DELETE_HOLDS, {"ids": ids})
        for row in held:
            changes.moved(session.sync_session, Moved(row.provider_id, row.id, None))
    released = [(row.id, row.provider_id) for row in rows if row.status != Status.HELD.value]
    if not released:
        return freed
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
    return freed


HOLD_EXPIRED = "The guest did not verify their email in time."


def lapsed(appointment: Appointment, now: datetime) -> bool:
    """Would a release of expired holds at ``now`` take this row?"""
    until = appointment.hold_until
    return appointment.status in RELEASED_STATUSES and until is not None and until <= now


def _release(*, postgresql: bool, after: ColumnElement[bool] | None = None) -> Any:
    """The UPDATE that finds the expired holds of the providers and clients bound as
    ``providers`` and ``clients`` (arrays on PostgreSQL), at ``now``: it cancels held guest
    bookings and leaves holds as they are (``lock_and_release`` deletes them), returning
    each with its status."""
    a_hold = Appointment.status == HOLD
    return (
        update(Appointment)
        .where(
            Appointment.status.in_(RELEASED),
            Appointment.hold_until <= bindparam("now"),
            or_(
                one_of(Appointment.provider_id, "providers", postgresql=postgresql),
                one_of(Appointment.client_key, "clients", postgresql=postgresql),
            ),
            *([after] if after is not None else []),
        )
        .values(
            status=case((a_hold, HOLD), else_=_CANCELLED),
            cancel_reason=case((a_hold, null()), else_=literal_column(f"'{HOLD_EXPIRED}'")),
            sequence=Appointment.sequence + 1,
            updated_at=bindparam("now"),
        )
        .returning(
            Appointment.id,
            Appointment.provider_id,
            Appointment.status,
            Appointment.blocked_start_at,
            Appointment.blocked_end_at,
        )
    )


def _lock_and_release() -> Select[Any]:
    """PostgreSQL: the locks, in the arrays' order (a function scan's rows), and the release
    of expired holds, as one statement. The locks are a CTE the statement's result reads, so
    they are taken whatever the release finds; the release may run before them, which is
    harmless (it only cancels holds that expired long before, and re-checks a row another
    transaction changed)."""
    keys = (
        func.unnest(
            cast(bindparam("lock_keys"), postgresql.ARRAY(Text())),
            cast(bindparam("lock_seeds"), postgresql.ARRAY(BigInteger())),
        )
        .table_valued(column("key", Text()), column("seed", BigInteger()))
        .render_derived(name="lock")
    )
    locks = (
        select(
            func.count(
                func.pg_advisory_xact_lock(func.hashtextextended(keys.c.key, keys.c.seed))
            ).label("taken")
        )
        .select_from(keys)
        .cte("locks")
    )
    released = _release(postgresql=True).cte("released")
    return select(
        locks.c.taken,
        released.c.id,
        released.c.provider_id,
        released.c.status,
        released.c.blocked_start_at,
        released.c.blocked_end_at,
    ).select_from(locks.outerjoin(released, true()))


_LOCK_AND_RELEASE = _lock_and_release()
_RELEASE = _release(postgresql=False)
# Expired holds found by the release (never a booking: they leave no row behind).
_DELETE_HOLDS = delete(Appointment).where(
    Appointment.id.in_(bindparam("ids", expanding=True)), Appointment.status == HOLD
)
_INSERT_EVENTS = insert(AppointmentEvent)


class Found(NamedTuple):
    """An appointment with what acting on it reads: its history (loaded with it), its
    provider (with the provider's account), its client's account (None for a guest's) and
    its service's name (None without a service)."""

    appointment: Appointment
    provider: Provider
    client: User | None
    service_name: str | None


_CLIENT = aliased(User, name="client")


def _found_query() -> Select[Appointment, Provider, User, str]:
    """``Found``'s columns: the provider's account joined by its relationship, the history
    loaded with the appointment."""
    return (
        select(Appointment, Provider, _CLIENT, Service.name)
        .join(Provider, Provider.id == Appointment.provider_id)
        .outerjoin(_CLIENT, _CLIENT.id == Appointment.client_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .options(joinedload(Appointment.events))
    )


@cache
def _one(key: str, *, lock: bool) -> Select[Appointment, Provider, User, str]:
    """``Found`` in one statement, by the column ``key`` equal to the parameter ``value``
    (the provider's account joined by its relationship); built once."""
    query = _found_query().where(getattr(Appointment, key) == bindparam("value"))
    # A change locks the row (PostgreSQL), so two concurrent changes apply one after the
    # other and the second sees the first's status. SQLite's BEGIN IMMEDIATE does the same.
    return query.with_for_update(of=Appointment) if lock else query


_SIBLING = aliased(Appointment, name="sibling")
_ASKED = aliased(Appointment, name="asked")


@cache
def _one_locked(key: str) -> Select[Appointment, Provider, User, str]:
    """``_one(key, lock=True)``, with the other members' rows of a collective team booking
    (``team_booking_id``) locked with it (``_locked_with_teams``)."""
    return _locked_with_teams(lambda rows: getattr(rows, key) == bindparam("value"))


@cache
def _many_locked(*, postgresql: bool) -> Select[*tuple[Any, ...]]:
    """``_one_locked("id")`` for the ids bound as ``ids``, in one statement; a hold is no
    appointment (``access.of_found``), so none is locked, nor kept from its release. On
    SQLite each row also says whether anyone is in its provider's line (``get_many_locked``)."""
    query = _locked_with_teams(
        lambda rows: and_(one_of(rows.id, "ids", postgresql=postgresql), rows.status != HOLD)
    )
    if postgresql:
        return query
    return query.add_columns(entries.anyone_waits(Appointment.provider_id))


def _locked_with_teams(
    matches: Callable[[Any], ColumnElement[bool]],
) -> Select[Appointment, Provider, User, str]:
    """``Found`` for the rows ``matches`` (given the table, or an alias of it, to match in),
    with the other members' rows of their collective team bookings, all locked in the order
    of their ids: a change of any row of one may change them all (``lifecycle``,
    ``reschedule``), and two changes entering by different rows would otherwise each hold
    one and wait for the other's (a deadlock). A row of no team booking matches no other
    (its ``team_booking_id`` is NULL). The rows are found by their ids, each branch by its
    index (the id's, the team booking's), never by a scan of every appointment: written as
    ``matches OR team_booking_id IN (...)``, PostgreSQL filtered the whole table."""
    wanted = union_all(
        select(_ASKED.id).where(matches(_ASKED)),
        select(_SIBLING.id)
        .join(_ASKED, _ASKED.team_booking_id == _SIBLING.team_booking_id)
        .where(matches(_ASKED)),
    )
    return (
        _found_query()
        .where(Appointment.id.in_(wanted))
        .order_by(Appointment.id)
        .with_for_update(of=Appointment)
    )


async def _found(session: AsyncSession, key: str, value: object, *, lock: bool) -> Found | None:
    if not lock:
        result = await session.execute(_one(key, lock=False), {"value": value})
        row = result.unique().one_or_none()
        return None if row is None else Found(*row)
    result = await session.execute(_one_locked(key), {"value": value})
    found = [Found(*row) for row in result.unique().all()]
    return next((one for one in found if getattr(one.appointment, key) == value), None)


async def get(
    session: AsyncSession, appointment_id: uuid.UUID, *, lock: bool = False
) -> Found | None:
    return await _found(session, "id", appointment_id, lock=lock)


async def get_many_locked(
    session: AsyncSession, appointment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Found]:
    """``get(..., lock=True)`` for many appointments in one statement (the booking queue's
    cancellations), by id, with the other rows of their collective team bookings (locked
    with them); an id found nowhere is absent."""
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    ids = sorted(set(appointment_ids))
    values = {"ids": ids if on_postgresql else padded(ids)}
    rows = (await session.execute(_many_locked(postgresql=on_postgresql), values)).unique().all()
    found = [Found(*row[:4]) for row in rows]
    if not on_postgresql:
        # Nobody joins a line before this write transaction ends (SQLite's write lock): who
        # waits for the providers' freed times need not be asked again when nobody does.
        entries.note_lines(session, {row[0].provider_id: row[4] for row in rows})
    return {one.appointment.id: one for one in found}


async def team_rows(
    session: AsyncSession, team_booking_id: uuid.UUID, *, lock: bool = False
) -> list[Found]:
    """Every member's row of a collective team booking, by id (the order they are locked
    in)."""
    query = _one("team_booking_id", lock=lock).order_by(Appointment.id)
    result = await session.execute(query, {"value": team_booking_id})
    return [Found(*row) for row in result.unique().all()]


async def get_by_verify_token_hash(
    session: AsyncSession, token_hash: str, *, lock: bool = False
) -> Found | None:
    return await _found(session, "verify_token_hash", token_hash, lock=lock)


async def get_by_token_hash(
    session: AsyncSession, token_hash: str, *, lock: bool = False
) -> Found | None:
    return await _found(session, "manage_token_hash", token_hash, lock=lock)


async def get_hold(
    session: AsyncSession, token_hash: str, *, lock: bool = False
) -> Appointment | None:
    """The hold (status held) of this token fingerprint; ``lock``: its row locked until the
    commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers)."""
    query = select(Appointment).where(
        Appointment.hold_token_hash == bindparam("token_hash"), Appointment.status == HOLD
    )
    if lock:
        query = query.with_for_update()
    # Read afresh (populate_existing): after the locks, a row this session read before
    # them may have been booked or released by another transaction.
    result = await session.execute(
        query.execution_options(populate_existing=True), {"token_hash": token_hash}
    )
    return result.scalar_one_or_none()


async def delete_hold(session: AsyncSession, hold: Appointment) -> None:
    """The hold's row, gone (it was never a booking: no history, no messages)."""
    connection = await session.connection()
    await connection.execute(_DELETE_HOLDS, {"ids": [hold.id]})
    changes.moved(session.sync_session, Moved(hold.provider_id, hold.id, None))


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
    # A hold is not an appointment yet: no list shows it (``booking.holds``).
    query: Select[Appointment] = select(Appointment).where(visible, Appointment.status != HOLD)
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


class Seat(NamedTuple):
    """A seat of a group session: the appointment, its client's account (None: a guest's)
    and its service's name."""

    appointment: Appointment
    client: User | None
    service_name: str | None


async def seats(
    session: AsyncSession,
    *,
    provider_id: uuid.UUID,
    session_key: uuid.UUID | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    lock: bool = False,
) -> list[Seat]:
    """The provider's seats of group sessions (taken under a capacity above 1), of one
    session or starting in [start_from, start_to), in start, session and seat order;
    ``lock``: their rows locked until the commit."""
    query = (
        select(Appointment, _CLIENT, Service.name)
        .outerjoin(_CLIENT, _CLIENT.id == Appointment.client_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .where(
            Appointment.provider_id == provider_id,
            Appointment.capacity > 1,
            Appointment.status != HOLD,  # a held seat has no attendee yet
        )
    )
    if session_key is not None:
        query = query.where(Appointment.session_key == session_key)
    if start_from is not None:
        query = query.where(Appointment.start_at >= start_from)
    if start_to is not None:
        query = query.where(Appointment.start_at < start_to)
    if lock:  # in the order of their ids, as every statement that locks several rows
        rows = await session.execute(query.order_by(Appointment.id).with_for_update(of=Appointment))
        return sorted((Seat(*row) for row in rows.all()), key=_seat_order)
    rows = await session.execute(
        query.order_by(Appointment.start_at, Appointment.session_key, Appointment.seat_no)
    )
    return [Seat(*row) for row in rows.all()]


def _seat_order(seat: Seat) -> tuple[datetime, uuid.UUID, int]:
    appointment = seat.appointment
    return appointment.start_at, appointment.session_key, appointment.seat_no


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


# Serialising bookings of one provider and of one client (PostgreSQL; on SQLite the write
# lock taken by BEGIN IMMEDIATE already does): concurrent inserts that conflict on an
# exclusion constraint can wait on each other and deadlock, and two constraints (provider,
# client) make it likelier. Taking the providers' locks, then the clients' — each in sorted
# order, so that every transaction takes them in one global order — before the judgment
# means conflicting writers queue instead. The constraints stay as the guarantee; the locks
# make the judgment authoritative and its refusals orderly 409s.


def _ordered(providers: Iterable[uuid.UUID], clients: Iterable[str]) -> dict[str, list[Any]]:
    """The providers' locks (seed 1), then the clients' (seed 2), each in sorted order: the
    one order every transaction takes them in."""
    provider_keys = sorted({str(provider_id) for provider_id in providers})
    client_keys = sorted(set(clients))
    return {
        "lock_keys": provider_keys + client_keys,
        "lock_seeds": [1] * len(provider_keys) + [2] * len(client_keys),
    }


def _lock_in_order() -> Select[Any]:
    """PostgreSQL: the booking locks bound as ``lock_keys`` and ``lock_seeds`` (``_ordered``),
    in the arrays' order (a function scan's rows)."""
    keys = (
        func.unnest(
            cast(bindparam("lock_keys"), postgresql.ARRAY(Text())),
            cast(bindparam("lock_seeds"), postgresql.ARRAY(BigInteger())),
        )
        .table_valued(column("key", Text()), column("seed", BigInteger()))
        .render_derived(name="lock")
    )
    taken = func.pg_advisory_xact_lock(func.hashtextextended(keys.c.key, keys.c.seed))
    return select(func.count(taken)).select_from(keys)


_LOCK_IN_ORDER = _lock_in_order()


async def lock_provider(session: AsyncSession, provider_id: uuid.UUID) -> None:
    """The provider's booking lock alone, the very lock a write takes first (``_ordered``:
    the provider's id, seed 1), held until the commit (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serializes writers). The waitlist takes it before it reads who is in line."""
    await lock_in_order(session, [provider_id])


async def lock_in_order(
    session: AsyncSession, provider_ids: Iterable[uuid.UUID], client_keys: Iterable[str] = ()
) -> None:
    """The providers' booking locks, then the clients', each sorted: the order every write
    takes them (``_ordered``). A transaction that will take some of them one at a time
    (the booking queue's cancellations and reschedules, whose judgments and hand-ons lock
    their providers and clients as they come) takes them all first, so that it never holds
    one while it waits for another that a writer holding that one waits for.

    Locks the transaction already holds from an earlier call are not asked for again (a
    batch's hand-ons lock providers its first step locked): they are held until it ends.
    Those taken inside a savepoint are not counted as held (its rollback may release
    them)."""
    connection = await session.connection()
    values = _ordered(provider_ids, client_keys)
    if connection.dialect.name != "postgresql" or not values["lock_keys"]:
        return
    held = transaction_memo(session, _HELD_LOCKS)
    if all(key in held for key in _keys(values)):
        return
    await connection.execute(_LOCK_IN_ORDER, values)
    _held(session, values)


def holds_provider_lock(session: AsyncSession, provider_id: uuid.UUID) -> bool:
    """Does this transaction hold the provider's booking lock, taken by an earlier
    statement (``lock_in_order``, a write's first step) outside a savepoint? PostgreSQL's
    locks only: on SQLite a write transaction holds the database's write lock instead."""
    return (str(provider_id), 1) in transaction_memo(session, _HELD_LOCKS)


def _held(session: AsyncSession, values: dict[str, list[Any]]) -> None:
    """The locks just taken (``_ordered``'s keys and seeds), held until the transaction
    ends; not those taken inside a savepoint (its rollback may release them)."""
    if not session.in_nested_transaction():
        transaction_memo(session, _HELD_LOCKS).update(dict.fromkeys(_keys(values)))


def _keys(values: dict[str, list[Any]]) -> Iterable[tuple[str, int]]:
    """``_ordered``'s locks as (key, seed) pairs, as ``_HELD_LOCKS`` keeps them."""
    return zip(values["lock_keys"], values["lock_seeds"], strict=True)


_HELD_LOCKS = "slotwise.booking.held_locks"  # ``transaction_memo``: (key, seed) -> None


def unreleased(
    session: AsyncSession, providers: Iterable[uuid.UUID], clients: Iterable[str]
) -> None:
    """Holds just written for these providers and clients: a release made before them no
    longer covers them (a waitlist's offer holds a time until it starts, which may already
    be past the release's clock), so the next write releases again."""
    released = transaction_memo(session, _RELEASED)
    for key in _keys(_ordered(providers, clients)):
        released.pop(key, None)


def released_already(
    session: AsyncSession,
    providers: Iterable[uuid.UUID],
    clients: Iterable[str],
    *,
    now: datetime,
) -> bool:
    """Would ``lock_and_release`` ask nothing for these providers and clients at ``now``
    (this transaction released their expired holds at ``now`` or later, under their
    locks)?"""
    postgresql = session.get_bind().dialect.name == "postgresql"
    return _released_already(session, _ordered(providers, clients), now=now, postgresql=postgresql)


def _released_already(
    session: AsyncSession, values: dict[str, list[Any]], *, now: datetime, postgresql: bool
) -> bool:
    """Did this transaction release the expired holds of every provider and client of
    ``values`` (``_ordered``) at ``now`` or later, and (PostgreSQL) does it hold their
    locks?"""
    released = transaction_memo(session, _RELEASED)
    if not all(released.get(key, _NEVER) >= now for key in _keys(values)):
        return False
    held = transaction_memo(session, _HELD_LOCKS)
    return not postgresql or all(key in held for key in _keys(values))


def _note_released(session: AsyncSession, values: dict[str, list[Any]], *, now: datetime) -> None:
    """The providers' and clients' expired holds released at ``now``: not inside a
    savepoint (its rollback may undo the release)."""
    if not session.in_nested_transaction():
        released = transaction_memo(session, _RELEASED)
        for key in _keys(values):
            released[key] = max(now, released.get(key, _NEVER))


# ``transaction_memo``: (key, seed) -> the latest ``now`` its expired holds were released at
_RELEASED = "slotwise.booking.released"
_NEVER = datetime.min.replace(tzinfo=UTC)


@cache
def _occurrences(*, lock: bool) -> Select[Appointment, Provider, User, str]:
    """``Found`` for each occurrence of the series bound as ``value``: in the rule's order,
    or locked in the order of their ids (``series_occurrences``)."""
    query = _one("series_id", lock=False)
    if lock:
        return query.order_by(Appointment.id).with_for_update(of=Appointment)
    return query.order_by(Appointment.recurrence_at, Appointment.id)


async def series_occurrences(
    session: AsyncSession, series_id: uuid.UUID, *, lock: bool = False
) -> list[Found]:
    """The series' occurrences (any status) in the rule's order, each as ``get`` finds one;
    ``lock``: locked until the commit, as a change locks one appointment, in the order of
    their ids, as every statement that locks several appointments takes them (the booking
    queue's cancellations lock rows of many series at once: two orders could deadlock)."""
    result = await session.execute(_occurrences(lock=lock), {"value": series_id})
    found = [Found(*row) for row in result.unique().all()]
    if lock:
        found.sort(key=lambda one: (one.appointment.recurrence_at, one.appointment.id))
    return found


# What round robin counts as a provider's booking of a service (``booking.pools``): every
# one that was not called off (a completed or missed one was given to that provider all
# the same).
COUNTED = (Status.PENDING, Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW)


async def booked_counts(
    session: AsyncSession, wanted: list[tuple[uuid.UUID, uuid.UUID | None, Interval]]
) -> dict[tuple[uuid.UUID | None, Interval], int]:
    """Each (provider, service, window)'s bookings of the service (COUNTED) that start in
    the window, by (service, window): one query per window (a batch's are its months)."""
    counts: dict[tuple[uuid.UUID | None, Interval], int] = {}
    for window in dict.fromkeys(window for _, _, window in wanted):
        values = {
            "providers": sorted({p for p, _, w in wanted if w == window}),
            "services": sorted({s for _, s, w in wanted if w == window and s is not None}),
            "start_at": window.start_at,
            "end_at": window.end_at,
            "earliest_at": window.start_at - LONGEST_BLOCK,
        }
        for row in await session.execute(_booked_counts(), values):
            counts[row.service_id, window] = int(row.booked)
    return counts


@cache
def _booked_counts() -> Select[uuid.UUID | None, int]:
    """Read by the providers' time index: what starts in the window blocks time from at
    most the longest block before it."""
    return (
        select(Appointment.service_id, func.count().label("booked"))
        .where(
            Appointment.provider_id.in_(bindparam("providers", expanding=True)),
            Appointment.blocked_start_at >= bindparam("earliest_at"),
            Appointment.blocked_start_at < bindparam("end_at"),
            Appointment.start_at >= bindparam("start_at"),
            Appointment.start_at < bindparam("end_at"),
            Appointment.service_id.in_(bindparam("services", expanding=True)),
            Appointment.status.in_(COUNTED),
        )
        .group_by(Appointment.service_id)
    )

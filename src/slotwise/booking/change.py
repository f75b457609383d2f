"""The one write of a change to an appointment that exists (a new status, a new time, a
guest's verified email, notes): its row's new values, its history row, and the messages it
queues with the reminders they replace, in the session's transaction.

On PostgreSQL one statement writes them all (data-modifying CTEs, as a new booking's write
does); on SQLite, one statement per table. ``write_each`` writes several such changes
together (a batch's cancellations): still one statement on PostgreSQL, one a table on
SQLite. The loaded ``Appointment`` shows the change at
once (``apply``), for the messages and the answer, without the ORM's unit of work: the
values are set as committed, so no flush writes them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from typing_extensions import Unpack

from slotwise.availability import changes
from slotwise.booking import announce, busy, events, repository, waitlist_repository
from slotwise.booking.models import Appointment, AppointmentEvent
from slotwise.db import Unnested, deferred, table_of, unnested, unsaved
from slotwise.notifications import outbox
from slotwise.notifications.models import OutboxMessage
from slotwise.webhooks import queue

_APPOINTMENTS = table_of(Appointment)
_EVENTS = table_of(AppointmentEvent)
_MESSAGES = table_of(OutboxMessage)


@dataclass(frozen=True, slots=True)
class Change:
    """One change of an appointment: its row's new values, and its history row."""

    appointment: Appointment
    values: dict[str, Any]
    history: dict[str, Any]


def apply(
    appointment: Appointment, values: dict[str, Any], **change: Unpack[events.Change]
) -> Change:
    """The change shown on the loaded appointment (its row's new values, ``updated_at``
    the change's time, and its history row appended), to be written by ``write``."""
    values = {**values, "updated_at": change["now"]}
    for key, value in values.items():
        set_committed_value(appointment, key, value)
    history = events.entry(appointment, **change)
    entries = [*appointment.events, unsaved(AppointmentEvent, **history)]
    set_committed_value(appointment, "events", entries)
    return Change(appointment, values, history)


async def write(
    session: AsyncSession,
    change: Change,
    messages: outbox.Batch | None = None,
    *,
    announced: queue.Event | None = None,
    lines: bool = False,
) -> None:
    """The change, its history row and ``messages`` (with the withdrawal of the
    appointment's reminders, if the batch withdraws them) written in the session's
    transaction, with the webhook event it makes (``announce.of_change``, or
    ``announced``); the slot cache is told of it at the commit. ``lines``: the change
    frees time the waitlist is offered next (``waitlist.promote``): where the transaction
    holds the provider's lock already (PostgreSQL), the write also says whether anyone is
    in the provider's line (``_asks_lines``), and the hand-on skips the look when nobody
    is."""
    appointment = change.appointment
    batch = messages or outbox.Batch()
    assert set(batch.withdrawn) <= {appointment.id}, "a change withdraws its own reminders"
    connection = await session.connection()
    params = _update_params(change)
    if announced is None:
        announced = announce.of_change(appointment, change.values)
    if connection.dialect.name == "postgresql":
        rows = batch.rows
        # Who subscribes to the provider's webhook events, asked with the write the first
        # time the transaction queues one of its events (``queue.know_wanted``).
        provider_id = appointment.provider_id
        asks = announced is not None and not queue.knows_wanted(session, provider_id)
        waits = lines and _asks_lines(session, {provider_id})
        statement, part = _statement(
            tuple(change.values),
            bool(batch.withdrawn),
            tuple(rows[0]) if rows else (),
            asks,
            waits,
        )
        params.update({f"h_{key}": value for key, value in change.history.items()})
        if part is not None:
            params.update(part.values(connection.dialect, rows))
        written = (await connection.execute(statement, params)).first()
        if asks and written is not None:
            queue.know_wanted(session, {provider_id: written.wanted})
        if waits and written is not None:
            waitlist_repository.note_lines(session, {provider_id: written.anyone_waits})
    else:
        # With a webhook event to queue, the writes travel with the transaction's next
        # statement (``db.deferred``: the question of who subscribes, unless the
        # transaction asked it already, else a later statement or the COMMIT); an error
        # of theirs is raised there and fails the transaction.
        later = announced is not None
        async with deferred(connection, later):
            await connection.execute(_update(tuple(change.values)), params)
        async with deferred(connection, later):
            await connection.execute(_INSERT_HISTORY, change.history)
        await batch.write(session, deferred=later)
    if announced is not None:
        await queue.enqueue(session, [announced])
    changes.moved(session.sync_session, busy.moved_appointment(appointment))


async def write_each(
    session: AsyncSession, written: Sequence[tuple[Change, outbox.Batch]], *, lines: bool = False
) -> None:
    """Changes of several appointments (each with its messages, and the webhook event
    ``announce.of_change`` makes of it), written as ``write`` writes each. Changes of the
    same columns whose messages have the same keys (the booking queue's batch of
    cancellations) are written together, each row its own values: on PostgreSQL in one
    statement (one round trip for all), on SQLite one statement a table, each executed
    for every row. Otherwise (or if an appointment is changed twice) one ``write`` each,
    in the order given."""
    shapes = {_shape(change, messages) for change, messages in written}
    appointments = {change.appointment.id for change, _ in written}
    # An appointment changed twice: each change in turn, as each saw the one before.
    if len(written) < 2 or len(shapes) > 1 or len(appointments) < len(written):
        for change, messages in written:
            await write(session, change, messages, lines=lines)
        return
    for change, messages in written:
        assert set(messages.withdrawn) <= {change.appointment.id}, "its own reminders"
    ((keys, history_keys, message_keys),) = shapes
    announced = [announce.of_change(change.appointment, change.values) for change, _ in written]
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await _write_each_in_one(
            session, connection, written, announced, keys, history_keys, message_keys, lines
        )
    else:
        # As ``write``: with a webhook event to queue, the writes travel with the
        # transaction's next statement.
        later = any(event is not None for event in announced)
        params = [_update_params(change) for change, _ in written]
        async with deferred(connection, later):
            await connection.execute(_update(keys), params)
        async with deferred(connection, later):
            await connection.execute(_INSERT_HISTORY, [change.history for change, _ in written])
        together = outbox.Batch()
        for _, messages in written:
            together.withdrawn += messages.withdrawn
            together.rows += messages.rows
        await together.write(session, deferred=later)
    await queue.enqueue(session, [event for event in announced if event is not None])
    for change, _ in written:
        changes.moved(session.sync_session, busy.moved_appointment(change.appointment))


async def _write_each_in_one(
    session: AsyncSession,
    connection: AsyncConnection,
    written: Sequence[tuple[Change, outbox.Batch]],
    announced: list[queue.Event | None],
    keys: tuple[str, ...],
    history_keys: tuple[str, ...],
    message_keys: tuple[str, ...],
    lines: bool,
) -> None:
    """PostgreSQL: ``write_each``'s one statement (``_statement_of_each``), asking who
    subscribes to the providers' webhook events if the transaction has not, and with
    ``lines`` whether anyone is in their lines (``write``)."""
    providers = {
        change.appointment.provider_id
        for (change, _), event in zip(written, announced, strict=True)
        if event is not None
    }
    asks = any(not queue.knows_wanted(session, provider_id) for provider_id in providers)
    changed = {change.appointment.provider_id for change, _ in written}
    waits = lines and _asks_lines(session, changed)
    withdrawn = [appointment_id for _, messages in written for appointment_id in messages.withdrawn]
    statement, parts = _statement_of_each(
        keys, history_keys, bool(withdrawn), message_keys, asks, waits
    )
    dialect = connection.dialect
    rows = [{"id": change.appointment.id, **change.values} for change, _ in written]
    params = parts.updates.values(dialect, rows)
    params.update(parts.history.values(dialect, [change.history for change, _ in written]))
    if parts.withdrawn is not None:
        params.update(
            parts.withdrawn.values(dialect, [{"appointment_id": key} for key in withdrawn])
        )
    if parts.messages is not None:
        params.update(
            parts.messages.values(
                dialect, [row for _, messages in written for row in messages.rows]
            )
        )
    answer = (await connection.execute(statement, params)).all()
    if asks:
        queue.know_wanted(session, {row.provider_id: row.wanted for row in answer})
    if waits:
        waitlist_repository.note_lines(
            session, {row.provider_id: row.anyone_waits for row in answer}
        )


def _asks_lines(session: AsyncSession, providers: set[uuid.UUID]) -> bool:
    """Should a write that frees these providers' time ask whether anyone is in their
    lines? Only under every one's lock, taken by an earlier statement: nobody can join a
    line from then until the commit (``waitlist_repository.note_lines``); and only while
    some line is not known yet."""
    known = waitlist_repository.nobody_waits(session)
    return not providers <= known and all(
        repository.holds_provider_lock(session, provider_id) for provider_id in providers
    )


def _update_params(change: Change) -> dict[str, Any]:
    """``_update``'s parameters for the change."""
    params = {f"set_{key}": value for key, value in change.values.items()}
    params["of_appointment"] = change.appointment.id
    return params


_INSERT_HISTORY = insert(_EVENTS)


def _shape(
    change: Change, messages: outbox.Batch
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The columns a change sets, its history row's and its messages' keys (every message
    of a batch has the same keys)."""
    rows = messages.rows
    return tuple(change.values), tuple(change.history), tuple(rows[0]) if rows else ()


@dataclass(frozen=True, slots=True)
class _Parts:
    updates: Unnested
    history: Unnested
    withdrawn: Unnested | None
    messages: Unnested | None


@cache
def _statement_of_each(
    keys: tuple[str, ...],
    history_keys: tuple[str, ...],
    withdraws: bool,
    message_keys: tuple[str, ...],
    asks: bool,
    lines: bool,
) -> tuple[Select[Any], _Parts]:
    """PostgreSQL: ``_statement`` for many changes of the same shape: each appointment's
    new values, history rows, withdrawals and messages sent as arrays (``unnested``).
    Built once per shape."""
    updates = unnested(_APPOINTMENTS.name, ("id", *keys), "u")
    given = updates.rows.c
    updated = (
        update(_APPOINTMENTS)
        .where(_APPOINTMENTS.c.id == given[_APPOINTMENTS.c.id.name])
        .values({key: given[_APPOINTMENTS.c[key].name] for key in keys})
        .returning(_APPOINTMENTS.c.id, _APPOINTMENTS.c.provider_id)
        .cte("updated")
    )
    history = unnested(_EVENTS.name, history_keys, "h")
    answer = _answer(updated.c.provider_id, asks, lines)
    statement = select(updated.c.id, updated.c.provider_id, *answer).add_cte(
        history.insert().cte("history")
    )
    withdrawn = None
    if withdraws:
        withdrawn = unnested(_MESSAGES.name, ("appointment_id",), "w")
        of = _MESSAGES.c.appointment_id == withdrawn.rows.c.appointment_id
        statement = statement.add_cte(outbox.withdraw_reminders(of).cte("withdrawn"))
    messages = None
    if message_keys:
        messages = unnested(_MESSAGES.name, message_keys, "m")
        statement = statement.add_cte(messages.insert().cte("queued"))
    return statement, _Parts(updates, history, withdrawn, messages)


def _answer(provider_id: ColumnElement[uuid.UUID], asks: bool, lines: bool) -> list[Any]:
    """What a write's statement says besides its rows: with ``asks``, who subscribes to the
    provider's webhook events (``queue.wanted_by``); with ``lines``, whether anyone is in
    the provider's line (``waitlist_repository.anyone_waits``)."""
    answer: list[Any] = []
    if asks:
        answer.append(queue.wanted_by(provider_id).label("wanted"))
    if lines:
        answer.append(waitlist_repository.anyone_waits(provider_id).label("anyone_waits"))
    return answer


@cache
def _update(keys: tuple[str, ...]) -> Update:
    """The appointment bound as ``of_appointment`` given the values ``set_<key>``."""
    return (
        update(_APPOINTMENTS)
        .where(_APPOINTMENTS.c.id == bindparam("of_appointment"))
        .values({key: bindparam(f"set_{key}") for key in keys})
    )


@cache
def _statement(
    keys: tuple[str, ...],
    withdraws: bool,
    message_keys: tuple[str, ...],
    asks: bool,
    lines: bool,
) -> tuple[Select[Any], Unnested | None]:
    """PostgreSQL: the UPDATE, the history row (``h_<key>``), the withdrawal and the
    messages (unnested arrays, ``m_<key>``) as one statement; built once per shape."""
    updated = (
        _update(keys).returning(_APPOINTMENTS.c.id, _APPOINTMENTS.c.provider_id).cte("updated")
    )
    history = insert(_EVENTS).values(
        {column.key: bindparam(f"h_{column.key}") for column in _EVENTS.columns}
    )
    answer = _answer(updated.c.provider_id, asks, lines)
    statement = select(updated.c.id, *answer).add_cte(history.cte("history"))
    if withdraws:
        statement = statement.add_cte(outbox.WITHDRAW_REMINDERS.cte("withdrawn"))
    if not message_keys:
        return statement, None
    part = unnested(_MESSAGES.name, message_keys, "m")
    return statement.add_cte(part.insert().cte("queued")), part

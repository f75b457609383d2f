"""The one write of a change to an appointment that exists (a new status, a new time, a
guest's verified email, notes): its row's new values, its history row, and the messages it
queues with the reminders they replace, in the session's transaction.

On PostgreSQL one statement writes them all (data-modifying CTEs, as a new booking's write
does); on SQLite, one statement per table. The loaded ``Appointment`` shows the change at
once (``apply``), for the messages and the answer, without the ORM's unit of work: the
values are set as committed, so no flush writes them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, Update, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from typing_extensions import Unpack

from slotwise.availability import changes
from slotwise.booking import announce, busy, events
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
) -> None:
    """The change, its history row and ``messages`` (with the withdrawal of the
    appointment's reminders, if the batch withdraws them) written in the session's
    transaction, with the webhook event it makes (``announce.of_change``, or
    ``announced``); the slot cache is told of it at the commit."""
    appointment = change.appointment
    batch = messages or outbox.Batch()
    assert set(batch.withdrawn) <= {appointment.id}, "a change withdraws its own reminders"
    connection = await session.connection()
    params = {f"set_{key}": value for key, value in change.values.items()}
    params["of_appointment"] = appointment.id
    if announced is None:
        announced = announce.of_change(appointment, change.values)
    if connection.dialect.name == "postgresql":
        rows = batch.rows
        # Who subscribes to the provider's webhook events, asked with the write the first
        # time the transaction queues one of its events (``queue.know_wanted``).
        provider_id = appointment.provider_id
        asks = announced is not None and not queue.knows_wanted(session, provider_id)
        statement, part = _statement(
            tuple(change.values), bool(batch.withdrawn), tuple(rows[0]) if rows else (), asks
        )
        params.update({f"h_{key}": value for key, value in change.history.items()})
        if part is not None:
            params.update(part.values(connection.dialect, rows))
        written = (await connection.execute(statement, params)).first()
        if asks and written is not None:
            queue.know_wanted(session, {provider_id: written.wanted})
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


_INSERT_HISTORY = insert(_EVENTS)


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
    keys: tuple[str, ...], withdraws: bool, message_keys: tuple[str, ...], asks: bool
) -> tuple[Select[Any], Unnested | None]:
    """PostgreSQL: the UPDATE, the history row (``h_<key>``), the withdrawal and the
    messages (unnested arrays, ``m_<key>``) as one statement; built once per shape."""
    updated = (
        _update(keys).returning(_APPOINTMENTS.c.id, _APPOINTMENTS.c.provider_id).cte("updated")
    )
    history = insert(_EVENTS).values(
        {column.key: bindparam(f"h_{column.key}") for column in _EVENTS.columns}
    )
    # ``asks``: also who subscribes to the provider's webhook events (``queue.wanted_by``).
    answer = [queue.wanted_by(updated.c.provider_id).label("wanted")] if asks else []
    statement = select(updated.c.id, *answer).add_cte(history.cte("history"))
    if withdraws:
        statement = statement.add_cte(outbox.WITHDRAW_REMINDERS.cte("withdrawn"))
    if not message_keys:
        return statement, None
    part = unnested(_MESSAGES.name, message_keys, "m")
    return statement.add_cte(part.insert().cte("queued")), part

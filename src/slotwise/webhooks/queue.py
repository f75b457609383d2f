"""Queueing webhook events: one delivery row per subscription that wants the event, written
by one INSERT ... SELECT in the transaction of the change (flush, never commit), so an event
exists exactly when its change does, and nothing is written where nobody subscribes.

Callers describe the change in plain values (booking its appointment as the API shows it,
availability whose schedule changed); this module knows no domain's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    distinct,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from slotwise.db import UTCDateTime, one_of, padded, table_of, transaction_memo
from slotwise.users.models import Role, User
from slotwise.webhooks.events import PAYLOAD_VERSION, EventType
from slotwise.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
    WebhookSubscriptionEvent,
)


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its id (the ``webhook-id`` of every delivery and retry of it), whose
    provider it concerns, and its payload as receivers get it (``payload``).

    Its data is made when it is queued (``enqueue``), and only if someone subscribes to
    it: most changes have no subscriber, and a booking's data is the appointment as the
    API shows it, a model built and dumped. ``data`` reads what the event is about as it
    is then: the caller queues it in the transaction that made the change, before
    changing that again."""

    id: uuid.UUID
    type: EventType
    provider_id: uuid.UUID
    at: datetime
    sequence: int | None
    data: Callable[[], dict[str, Any]]

    @property
    def payload(self) -> dict[str, Any]:
        """``version``, ``id``, ``type``, ``timestamp``, the appointment's ``sequence``
        (booking events: receivers order an appointment's events by it), ``data``."""
        payload: dict[str, Any] = {
            "version": PAYLOAD_VERSION,
            "id": str(self.id),
            "type": self.type.value,
            "timestamp": self.at.isoformat(),
        }
        if self.sequence is not None:
            payload["sequence"] = self.sequence
        payload["data"] = self.data()
        return payload


def event(
    kind: EventType,
    *,
    provider_id: uuid.UUID,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    now: datetime,
    sequence: int | None = None,
) -> Event:
    """An event of ``kind`` about the provider's ``data`` (or what makes it, when it is
    queued: ``Event``)."""
    made = data if callable(data) else (lambda: data)
    return Event(uuid.uuid4(), kind, provider_id, now, sequence, made)


_SUBSCRIPTIONS = table_of(WebhookSubscription)
_WANTS = table_of(WebhookSubscriptionEvent)
_DELIVERIES = table_of(WebhookDelivery)
_USERS = table_of(User)


def entitled() -> ColumnElement[bool]:
    """Whether a subscription's owner (``users`` joined on ``owner_id``) may still hear its
    events: an active, unsuspended admin (every provider's, or one provider's), or an
    active, unsuspended provider for its own provider's (a provider's subscription names
    the provider it was made for). A subscription outlives a change of its owner's role or
    standing, but from then on it hears nothing: a demoted admin's subscription to every
    provider would otherwise go on receiving every tenant's bookings."""
    return and_(
        _USERS.c.is_active,
        ~_USERS.c.is_blocked,
        or_(
            _USERS.c.role == Role.ADMIN.value,
            and_(_USERS.c.role == Role.PROVIDER.value, _SUBSCRIPTIONS.c.provider_id.is_not(None)),
        ),
    )


# Built once. An admin's subscription (no provider) hears of every provider.
_QUEUE = insert(_DELIVERIES).from_select(
    [
        "subscription_id",
        "event_id",
        "event_type",
        "payload",
        "status",
        "due_at",
        "attempts",
        "created_at",
    ],
    select(
        _SUBSCRIPTIONS.c.id,
        bindparam("event_id", type_=Uuid()),
        bindparam("event_type", type_=String()),
        bindparam("payload", type_=JSON()),
        literal(DeliveryStatus.PENDING.value, String()),
        bindparam("at", type_=UTCDateTime()),
        literal(0, Integer()),
        bindparam("at", type_=UTCDateTime()),
    )
    .join(_WANTS, _WANTS.c.subscription_id == _SUBSCRIPTIONS.c.id)
    .join(_USERS, _USERS.c.id == _SUBSCRIPTIONS.c.owner_id)
    .where(
        _SUBSCRIPTIONS.c.is_active,
        entitled(),
        _WANTS.c.event_type == bindparam("event_type", type_=String()),
        or_(
            _SUBSCRIPTIONS.c.provider_id == bindparam("provider_id", type_=Uuid()),
            _SUBSCRIPTIONS.c.provider_id.is_(None),
        ),
    ),
)


def _subscribed(provider: ColumnElement[bool]) -> Select[uuid.UUID | None, str]:
    """(provider_id, event_type) of the active subscriptions whose provider matches
    ``provider`` (a condition on ``webhook_subscriptions.provider_id``), and the admins',
    every provider's (provider_id null), whose owner may hear them."""
    return (
        select(WebhookSubscription.provider_id, WebhookSubscriptionEvent.event_type)
        .join(
            WebhookSubscriptionEvent,
            WebhookSubscriptionEvent.subscription_id == WebhookSubscription.id,
        )
        .join(_USERS, _USERS.c.id == WebhookSubscription.owner_id)
        .where(
            WebhookSubscription.is_active,
            entitled(),
            or_(provider, WebhookSubscription.provider_id.is_(None)),
        )
    )


def _wanted(*, postgresql: bool) -> Select[uuid.UUID | None, str]:
    """What the active subscriptions of the providers bound as ``providers`` (and the
    admins', every provider's: provider_id null) want: (provider_id, event_type) rows."""
    return _subscribed(
        one_of(WebhookSubscription.provider_id, "providers", postgresql=postgresql)
    ).distinct()


def wanted_by(provider_id: ColumnElement[uuid.UUID]) -> ScalarSelect[Any]:
    """PostgreSQL: the event types someone subscribes to for the provider ``provider_id``
    (a column of the enclosing statement), as an array: a column a statement that writes
    a provider's appointments returns, so that queuing their events asks nothing more
    (``know_wanted``)."""
    subscribed = _subscribed(WebhookSubscription.provider_id == provider_id)
    types = func.array_agg(distinct(WebhookSubscriptionEvent.event_type))
    return subscribed.with_only_columns(types).scalar_subquery()


def know_wanted(session: AsyncSession, wanted: dict[uuid.UUID, list[str] | None]) -> None:
    """What this transaction read of who subscribes (``wanted_by``: the event types, or
    None for none, wanted of each provider), kept for ``enqueue`` until it ends."""
    known: dict[uuid.UUID, frozenset[str]] = transaction_memo(session, _WANTED_MEMO)
    for provider_id, types in wanted.items():
        known.setdefault(provider_id, frozenset(types or ()))


def knows_wanted(session: AsyncSession, provider_id: uuid.UUID) -> bool:
    """Has this transaction read who subscribes to the provider's events?"""
    return provider_id in transaction_memo(session, _WANTED_MEMO)


_WANTED = {False: _wanted(postgresql=False), True: _wanted(postgresql=True)}
_WANTED_MEMO = "slotwise.webhooks.wanted"  # ``transaction_memo``: provider id -> event types


async def _wanted_by(
    session: AsyncSession, connection: AsyncConnection, providers: set[uuid.UUID]
) -> dict[uuid.UUID, frozenset[str]]:
    """The event types someone subscribes to for each provider (theirs, and every
    provider's). Read once a transaction for a provider: a batch that changes many of one
    provider's appointments asks once (a subscription made meanwhile hears the changes of
    transactions that begin after it, as if it had been made just after this one's first
    question)."""
    known: dict[uuid.UUID, frozenset[str]] = transaction_memo(session, _WANTED_MEMO)
    asked = sorted(providers - known.keys())
    if asked:
        postgresql = connection.dialect.name == "postgresql"
        rows = (
            await connection.execute(
                _WANTED[postgresql], {"providers": asked if postgresql else padded(asked)}
            )
        ).all()
        everyone = {str(row.event_type) for row in rows if row.provider_id is None}
        for provider_id in asked:
            known[provider_id] = frozenset(
                everyone | {str(row.event_type) for row in rows if row.provider_id == provider_id}
            )
    return known


async def ask_wanted(session: AsyncSession, providers: set[uuid.UUID]) -> None:
    """Who subscribes to these providers' events, asked now in one query for the rest of
    the transaction (``enqueue`` then asks nothing of them): for a caller about to change
    appointments of several providers, who would otherwise ask once for each."""
    await _wanted_by(session, await session.connection(), providers)


async def still_entitled(session: AsyncSession, subscription_id: uuid.UUID) -> bool:
    """Whether the subscription's owner may still hear its events (`entitled`), now."""
    found = await session.scalar(
        select(_SUBSCRIPTIONS.c.id)
        .join(_USERS, _USERS.c.id == _SUBSCRIPTIONS.c.owner_id)
        .where(_SUBSCRIPTIONS.c.id == subscription_id, entitled())
    )
    return found is not None


async def enqueue(session: AsyncSession, events: Sequence[Event]) -> None:
    """The events' deliveries, into the caller's transaction. One query first finds the
    events anyone wants: where nobody subscribes (most changes), nothing more is sent, and
    a delivery row is written per event and subscription only where someone does."""
    if not events:
        return
    connection = await session.connection()
    wanted = await _wanted_by(session, connection, {item.provider_id for item in events})
    events = [item for item in events if item.type.value in wanted[item.provider_id]]
    if not events:
        return
    await connection.execute(
        _QUEUE,
        [
            {
                "event_id": item.id,
                "event_type": item.type.value,
                "payload": item.payload,
                "at": item.at,
                "provider_id": item.provider_id,
            }
            for item in events
        ],
    )

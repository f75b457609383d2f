"""Subscriptions: made, read, changed, deleted and re-keyed by their owner (a provider, for
its own events) or any admin (an admin's own are for every provider's events). Another
provider's subscription is not found: its existence is not told."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.errors import InvalidInput, NotFound
from slotwise.outbound import OutboundGuard, Refused
from slotwise.providers import service as providers_service
from slotwise.users.models import Role, User
from slotwise.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    WebhookSubscriptionEvent,
)
from slotwise.webhooks.schemas import WebhookCreate, WebhookUpdate

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    message = "No such webhook subscription."


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    message = "No such delivery of this subscription."


class UrlRefused(InvalidInput):
    code = "webhook_url_refused"
    message = "Slotwise does not call this URL."


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _checked_url(guard: OutboundGuard, url: str) -> str:
    try:
        guard.check_url(url)
    except Refused as refused:
        raise UrlRefused(details={"reason": refused.reason}) from None
    return url


async def create(
    session: AsyncSession,
    *,
    user: User,
    data: WebhookCreate,
    guard: OutboundGuard,
    now: datetime,
) -> WebhookSubscription:
    """A provider's subscription is to its own events; an admin's, to every provider's."""
    provider_id = None
    if user.role is not Role.ADMIN:
        provider_id = (await providers_service.get_own(session, user=user)).id
    subscription = WebhookSubscription(
        id=uuid.uuid4(),
        owner_id=user.id,
        provider_id=provider_id,
        url=_checked_url(guard, data.url),
        description=data.description,
        event_types=sorted(set(data.event_types)),
        is_active=data.is_active,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    await _set_event_types(session, subscription.id, subscription.event_types)
    return subscription


async def _set_event_types(
    session: AsyncSession, subscription_id: uuid.UUID, event_types: Sequence[str]
) -> None:
    await session.execute(
        delete(WebhookSubscriptionEvent).where(
            WebhookSubscriptionEvent.subscription_id == subscription_id
        )
    )
    await session.execute(
        insert(WebhookSubscriptionEvent),
        [{"subscription_id": subscription_id, "event_type": kind} for kind in event_types],
    )


def _sees(user: User, subscription: WebhookSubscription) -> bool:
    """An admin sees every subscription; a provider, its own that are for its provider. A
    subscription to every provider made while its owner was an admin is not theirs to read
    once they are not (its deliveries hold every tenant's bookings); an admin may delete
    it."""
    return user.role is Role.ADMIN or (
        subscription.owner_id == user.id and subscription.provider_id is not None
    )


async def list_for(session: AsyncSession, *, user: User) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).order_by(
        WebhookSubscription.created_at, WebhookSubscription.id
    )
    if user.role is not Role.ADMIN:
        query = query.where(WebhookSubscription.owner_id == user.id)
    return [
        subscription for subscription in await session.scalars(query) if _sees(user, subscription)
    ]


async def get_for(
    session: AsyncSession, *, user: User, subscription_id: uuid.UUID
) -> WebhookSubscription:
    subscription = await session.get(WebhookSubscription, subscription_id)
    if subscription is None or not _sees(user, subscription):
        raise WebhookNotFound()
    return subscription


async def update_subscription(
    session: AsyncSession,
    subscription: WebhookSubscription,
    *,
    data: WebhookUpdate,
    guard: OutboundGuard,
    now: datetime,
) -> WebhookSubscription:
    if data.url is not None:
        subscription.url = _checked_url(guard, data.url)
    if "description" in data.model_fields_set:
        subscription.description = data.description
    if data.event_types is not None:
        subscription.event_types = sorted(set(data.event_types))
        await _set_event_types(session, subscription.id, subscription.event_types)
    if data.is_active is not None:
        subscription.is_active = data.is_active
        if data.is_active:  # re-enabled: its failures so far no longer count
            subscription.disabled_at = None
            subscription.failing_since = None
    subscription.updated_at = now
    await session.flush()
    return subscription


async def remove(session: AsyncSession, subscription: WebhookSubscription) -> None:
    await session.delete(subscription)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, subscription: WebhookSubscription, *, overlap: timedelta, now: datetime
) -> WebhookSubscription:
    """A new secret; the one it replaces keeps signing (both signatures sent) for
    ``overlap``, so receivers can switch without dropping a delivery."""
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = now + overlap
    subscription.secret = new_secret()
    subscription.updated_at = now
    await session.flush()
    return subscription


async def deliveries(
    session: AsyncSession, subscription: WebhookSubscription, *, limit: int, offset: int
) -> tuple[list[WebhookDelivery], dict[uuid.UUID, list[WebhookAttempt]]]:
    """The subscription's deliveries, newest first, with their attempts (oldest first)."""
    rows = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription.id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.event_id)
            .limit(limit)
            .offset(offset)
        )
    )
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {row.event_id: [] for row in rows}
    if rows:
        logged = await session.scalars(
            select(WebhookAttempt)
            .where(
                WebhookAttempt.subscription_id == subscription.id,
                WebhookAttempt.event_id.in_(list(attempts)),
            )
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        for attempt in logged:
            attempts[attempt.event_id].append(attempt)
    return rows, attempts


async def redeliver(
    session: AsyncSession,
    subscription: WebhookSubscription,
    *,
    event_id: uuid.UUID,
    now: datetime,
) -> WebhookDelivery:
    """The delivery queued again, due now, with the same event id (whatever became of it:
    a receiver that lost it, or that was down past the retries, asks for it again)."""
    delivery = await session.get(WebhookDelivery, (subscription.id, event_id))
    if delivery is None:
        raise DeliveryNotFound()
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.event_id == event_id,
        )
        .values(
            status=DeliveryStatus.PENDING,
            due_at=now,
            attempts=0,
            locked_until=None,
            claimed_by=None,
        )
    )
    await session.refresh(delivery)
    return delivery

"""``/webhooks``: a provider's subscriptions to its own events, an admin's to everyone's;
their secrets, deliveries and redeliveries."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth.deps import require_role
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.outbound import OutboundGuard
from slotwise.shared import NowDep, SharedDep
from slotwise.users.models import Role, User
from slotwise.webhooks import service
from slotwise.webhooks.models import WebhookDelivery, WebhookSubscription
from slotwise.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookSecret,
    WebhookUpdate,
)

router = APIRouter()

Subscriber = Annotated[User, Depends(require_role(Role.PROVIDER, Role.ADMIN))]


async def owned_subscription(
    subscription_id: uuid.UUID, user: Subscriber, session: SessionDep
) -> WebhookSubscription:
    """The subscription in the path, if the caller owns it or is an admin (else 404)."""
    return await service.get_for(session, user=user, subscription_id=subscription_id)


OwnedSubscription = Annotated[WebhookSubscription, Depends(owned_subscription)]


def _guard(shared: SharedDep) -> OutboundGuard:
    return OutboundGuard.from_settings(shared.settings)


GuardDep = Annotated[OutboundGuard, Depends(_guard)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=responses(401, 403, 404),
    summary="Subscribe a URL to events (the secret is shown once)",
)
@needs(Scope.MANAGE)
async def create_webhook(
    data: WebhookCreate, user: Subscriber, session: SessionDep, guard: GuardDep, now: NowDep
) -> WebhookCreated:
    subscription = await service.create(session, user=user, data=data, guard=guard, now=now)
    read = WebhookRead.model_validate(subscription)
    return WebhookCreated(**read.model_dump(), secret=subscription.secret)


@router.get(
    "",
    response_model=list[WebhookRead],
    responses=responses(401, 403),
    summary="Your subscriptions (an admin: everyone's)",
)
async def list_webhooks(user: Subscriber, session: SessionDep) -> list[WebhookSubscription]:
    return await service.list_for(session, user=user)


@router.get(
    "/{subscription_id}",
    response_model=WebhookRead,
    responses=responses(401, 403, 404),
    summary="One subscription",
)
async def get_webhook(subscription: OwnedSubscription) -> WebhookSubscription:
    return subscription


@router.patch(
    "/{subscription_id}",
    response_model=WebhookRead,
    responses=responses(401, 403, 404),
    summary="Change a subscription's URL, events, description or active flag",
)
@needs(Scope.MANAGE)
async def update_webhook(
    data: WebhookUpdate,
    subscription: OwnedSubscription,
    session: SessionDep,
    guard: GuardDep,
    now: NowDep,
) -> WebhookSubscription:
    return await service.update_subscription(session, subscription, data=data, guard=guard, now=now)


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Delete a subscription and its deliveries",
)
@needs(Scope.MANAGE)
async def delete_webhook(subscription: OwnedSubscription, session: SessionDep) -> None:
    await service.remove(session, subscription)


@router.post(
    "/{subscription_id}/rotate-secret",
    response_model=WebhookSecret,
    responses=responses(401, 403, 404),
    summary="A new secret; the old one keeps signing for the overlap period",
)
@needs(Scope.MANAGE)
async def rotate_secret(
    subscription: OwnedSubscription, session: SessionDep, shared: SharedDep, now: NowDep
) -> WebhookSecret:
    overlap = timedelta(hours=shared.settings.webhook_secret_overlap_hours)
    rotated = await service.rotate_secret(session, subscription, overlap=overlap, now=now)
    return WebhookSecret(
        secret=rotated.secret, previous_secret_valid_until=rotated.previous_secret_until
    )


def _delivery(row: WebhookDelivery, attempts: list[AttemptRead]) -> DeliveryRead:
    return DeliveryRead(
        id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        due_at=row.due_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        created_at=row.created_at,
        payload=row.payload,
        attempt_log=attempts,
    )


@router.get(
    "/{subscription_id}/deliveries",
    response_model=list[DeliveryRead],
    responses=responses(401, 403, 404),
    summary="The subscription's deliveries, newest first, each with its attempts",
)
async def list_deliveries(
    subscription: OwnedSubscription,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")] = 0,
) -> list[DeliveryRead]:
    rows, attempts = await service.deliveries(session, subscription, limit=limit, offset=offset)
    return [
        _delivery(row, [AttemptRead.model_validate(a) for a in attempts[row.event_id]])
        for row in rows
    ]


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=responses(401, 403, 404),
    summary="Queue a delivery again, due now, with the same event id",
)
@needs(Scope.MANAGE)
async def redeliver(
    delivery_id: uuid.UUID, subscription: OwnedSubscription, session: SessionDep, now: NowDep
) -> DeliveryRead:
    row = await service.redeliver(session, subscription, event_id=delivery_id, now=now)
    return _delivery(row, [])

"""Webhook events delivered to a real HTTP receiver on loopback: queued with the change
(never for one that rolled back), signed per Standard Webhooks, retried, logged, and a
subscription failing for days disabled with its owner told by email."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from slotwise.config import Settings
from slotwise.notifications.models import OutboxMessage
from slotwise.outbound import OutboundGuard
from slotwise.webhooks.models import WebhookDelivery
from slotwise.webhooks.worker import WebhookWorker
from tests.factories import (
    BOOKING_NOW,
    Account,
    Clock,
    bookable_provider,
    count_rows,
    guest_booking,
    login,
    signed_in_admin,
)
from tests.receiver import Receiver

START = "2027-03-05T15:00:00Z"
EVERY_EVENT = [
    "booking.created",
    "booking.confirmed",
    "booking.declined",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.completed",
    "booking.no_show",
    "availability.changed",
]


@pytest.fixture
def worker(app: FastAPI, settings: Settings) -> WebhookWorker:
    return WebhookWorker(
        db=app.state.slotwise.db,
        settings=settings,
        guard=OutboundGuard.from_settings(settings),
        worker_id="test-worker",
    )


async def _subscribed(
    client: httpx.AsyncClient, receiver: Receiver, **profile: object
) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    provider, created = await bookable_provider(client, hours=("00:00:00", "23:59:00"), **profile)
    hook = await client.post(
        "/webhooks",
        headers=provider.headers,
        json={"url": receiver.url, "event_types": EVERY_EVENT},
    )
    assert hook.status_code == 201, hook.text
    return provider, created, hook.json()


async def _book(client: httpx.AsyncClient, profile: dict[str, Any], start: str = START) -> Any:
    response = await client.post("/appointments/", json=guest_booking(profile["id"], start))
    assert response.status_code == 201, response.text
    return response.json()


def _verified(secret: str, request: Any) -> dict[str, Any]:
    """The body, verified as a receiver does (raises if the signature does not match)."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_a_booking_is_delivered_signed_once(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver, requires_confirmation=False)
    booked = await _book(client, profile)
    outcome = await worker.run_until_idle(now=clock.now)
    assert (outcome.delivered, outcome.retried) == (1, 0)
    (request,) = receiver.received
    payload = _verified(hook["secret"], request)
    assert payload["version"] == 1
    assert payload["type"] == "booking.created"
    assert payload["id"] == request.headers["webhook-id"]
    assert payload["sequence"] == 0
    assert payload["data"]["appointment"]["id"] == booked["id"]
    assert payload["data"]["appointment"]["status"] == "confirmed"
    assert await worker.run_until_idle(now=clock.now + timedelta(days=2)) == type(outcome)()
    deliveries = await client.get(f"/webhooks/{hook['id']}/deliveries", headers=provider.headers)
    (delivery,) = deliveries.json()
    assert delivery["id"] == payload["id"]
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [204]


async def test_a_refused_booking_queues_nothing(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    _, profile, _ = await _subscribed(client, receiver)
    await _book(client, profile)
    taken = await client.post("/appointments/", json=guest_booking(profile["id"], START))
    assert taken.status_code == 409
    await worker.run_until_idle(now=clock.now)
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["booking.created"]


async def test_each_change_is_an_event_with_a_rising_sequence(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver, requires_confirmation=True)
    booked = await _book(client, profile)
    path = f"/appointments/{booked['id']}"
    confirmed = await client.patch(
        f"{path}/status", headers=provider.headers, json={"status": "confirmed"}
    )
    assert confirmed.status_code == 200, confirmed.text
    moved = await client.post(
        f"{path}/reschedule",
        headers=provider.headers,
        json={"new_start_time": "2027-03-06T15:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    cancelled = await client.post(f"{path}/cancel", headers=provider.headers)
    assert cancelled.status_code == 200, cancelled.text
    await worker.run_until_idle(now=clock.now)
    payloads = sorted(
        (_verified(hook["secret"], request) for request in receiver.received),
        key=lambda payload: payload["sequence"],
    )
    assert [p["type"] for p in payloads] == [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    assert len({p["sequence"] for p in payloads}) == 4
    assert payloads[-1]["data"]["appointment"]["status"] == "cancelled"


async def test_a_failure_is_retried_with_the_same_id_and_logged(
    client: httpx.AsyncClient,
    clock: Clock,
    receiver: Receiver,
    worker: WebhookWorker,
    settings: Settings,
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    await _book(client, profile)
    receiver.status, receiver.body = 503, b"down for maintenance"
    first = await worker.run_until_idle(now=clock.now)
    assert (first.delivered, first.retried) == (0, 1)
    early = await worker.run_until_idle(now=clock.now + timedelta(seconds=10))
    assert early.claimed == 0  # backoff: not due yet
    receiver.status, receiver.body = 200, b"ok"
    later = clock.now + timedelta(seconds=settings.webhook_retry_base_seconds)
    assert (await worker.run_until_idle(now=later)).delivered == 1
    first_try, second_try = receiver.received
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"]
    (delivery,) = (
        await client.get(f"/webhooks/{hook['id']}/deliveries", headers=provider.headers)
    ).json()
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 2
    log = delivery["attempt_log"]
    assert [(a["status_code"], a["error"], a["response_excerpt"]) for a in log] == [
        (503, "HTTP 503", "down for maintenance"),
        (200, None, "ok"),
    ]


async def test_a_subscription_failing_for_three_days_is_disabled_and_its_owner_emailed(
    app: FastAPI,
    client: httpx.AsyncClient,
    clock: Clock,
    receiver: Receiver,
    worker: WebhookWorker,
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    receiver.status = 500
    await _book(client, profile)
    await worker.run_until_idle(now=clock.now)
    await _book(client, profile, start="2027-03-07T15:00:00Z")
    at = clock.now + timedelta(days=2)
    await worker.run_until_idle(now=at)  # still within three days
    shown = await client.get(f"/webhooks/{hook['id']}", headers=provider.headers)
    assert shown.json()["is_active"] is True
    await worker.run_until_idle(now=clock.now + timedelta(days=3, minutes=1))
    shown = await client.get(f"/webhooks/{hook['id']}", headers=provider.headers)
    assert shown.json()["is_active"] is False
    assert shown.json()["disabled_at"] is not None
    assert await count_rows(app, OutboxMessage, kind="webhook_disabled") == 1
    mail = await count_rows(
        app, OutboxMessage, kind="webhook_disabled", recipient_email=provider.email
    )
    assert mail == 1


async def test_a_success_clears_the_failing_streak(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    receiver.status = 500
    await _book(client, profile)
    await worker.run_until_idle(now=clock.now)
    failing = await client.get(f"/webhooks/{hook['id']}", headers=provider.headers)
    assert failing.json()["failing_since"] is not None
    receiver.status = 204
    await worker.run_until_idle(now=clock.now + timedelta(hours=1))
    healthy = await client.get(f"/webhooks/{hook['id']}", headers=provider.headers)
    assert healthy.json()["failing_since"] is None


async def test_redeliver_sends_the_same_event_again(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    await _book(client, profile)
    await worker.run_until_idle(now=clock.now)
    (delivery,) = (
        await client.get(f"/webhooks/{hook['id']}/deliveries", headers=provider.headers)
    ).json()
    again = await client.post(
        f"/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", headers=provider.headers
    )
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    await worker.run_until_idle(now=clock.now)
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery["id"]] * 2
    missing = await client.post(
        f"/webhooks/{hook['id']}/deliveries/{hook['id']}/redeliver", headers=provider.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "webhook_delivery_not_found"


async def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    rotated = await client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=provider.headers)
    new_secret = rotated.json()["secret"]
    await _book(client, profile)
    worker.sent_clock = lambda: BOOKING_NOW  # sign as of the request clock
    await worker.run_until_idle(now=clock.now)
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], new_secret):
        signed = Webhook(secret).sign(request.headers["webhook-id"], BOOKING_NOW, request.body)
        assert signed in request.headers["webhook-signature"].split(" ")


async def test_availability_changes_are_events(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    provider, profile, hook = await _subscribed(client, receiver)
    added = await client.post(
        "/providers/me/time-off",
        headers=provider.headers,
        json={"start_date": "2027-04-01", "end_date": "2027-04-02"},
    )
    assert added.status_code == 201, added.text
    removed = await client.delete(
        f"/providers/me/time-off/{added.json()['id']}", headers=provider.headers
    )
    assert removed.status_code == 204
    await worker.run_until_idle(now=clock.now)
    payloads = [_verified(hook["secret"], request) for request in receiver.received]
    assert {(p["type"], p["data"]["changed"]) for p in payloads} == {
        ("availability.changed", "time_off")
    }
    assert len(payloads) == 2
    assert all(p["data"]["provider_id"] == profile["id"] for p in payloads)


async def test_another_providers_events_are_not_delivered(
    client: httpx.AsyncClient, clock: Clock, receiver: Receiver, worker: WebhookWorker
) -> None:
    await _subscribed(client, receiver)
    _, other = await bookable_provider(client, hours=("00:00:00", "23:59:00"))
    await _book(client, other)
    await worker.run_until_idle(now=clock.now)
    assert receiver.received == []


async def test_a_subscription_hears_nothing_once_its_owner_loses_the_right(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    clock: Clock,
    receiver: Receiver,
    worker: WebhookWorker,
) -> None:
    """A subscription stands on its owner's role and standing, as they are when the event
    happens and when it is delivered: an admin demoted to provider no longer hears (or
    reads) every tenant's bookings, a suspended provider no longer hears its own."""
    root = await signed_in_admin(client, settings)
    admin = await signed_in_admin(client, settings)
    everyone = await client.post(
        "/webhooks", headers=admin.headers, json={"url": receiver.url, "event_types": EVERY_EVENT}
    )
    assert everyone.status_code == 201, everyone.text
    provider, profile, own = await _subscribed(client, receiver, requires_confirmation=False)
    await _book(client, profile)  # queued for both, while both may hear it

    demoted = await client.patch(
        f"/users/{admin.id}", headers=root.headers, json={"role": "provider"}
    )
    assert demoted.status_code == 200, demoted.text
    await _book(client, profile, "2027-03-05T17:00:00Z")  # queued for the provider only
    blocked = await client.patch(
        f"/users/{provider.id}", headers=root.headers, json={"is_blocked": True}
    )
    assert blocked.status_code == 200, blocked.text
    await worker.run_until_idle(now=clock.now)

    assert receiver.received == []  # what was queued before is held back at delivery
    created = "booking.created"
    everyone_id, own_id = uuid.UUID(everyone.json()["id"]), uuid.UUID(own["id"])
    # The admin's heard the first booking only; the provider's, both.
    assert (
        await count_rows(app, WebhookDelivery, subscription_id=everyone_id, event_type=created) == 1
    )
    assert await count_rows(app, WebhookDelivery, subscription_id=own_id, event_type=created) == 2
    again = await login(client, admin.email)
    headers = {"Authorization": f"Bearer {again['access_token']}"}
    assert (await client.get("/webhooks", headers=headers)).json() == []
    hidden = await client.get(f"/webhooks/{everyone.json()['id']}/deliveries", headers=headers)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "webhook_not_found"
    # An admin still sees both, and may delete them.
    listed = {hook["id"] for hook in (await client.get("/webhooks", headers=root.headers)).json()}
    assert listed == {everyone.json()["id"], own["id"]}

"""``/webhooks``: who may subscribe, to what, and who sees which subscription."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from slotwise.config import Settings
from slotwise.webhooks import queue
from slotwise.webhooks.events import EventType
from slotwise.webhooks.models import WebhookDelivery
from tests.booking.test_change import statements_of
from tests.factories import BOOKING_NOW, Clock, provider_with_profile, signed_in, signed_in_admin

HOOK = "http://127.0.0.1:9/hook"
BODY = {"url": HOOK, "event_types": ["booking.created", "booking.cancelled"]}


async def test_a_provider_subscribes_and_sees_the_secret_once(client: httpx.AsyncClient) -> None:
    provider, profile = await provider_with_profile(client)
    created = await client.post("/webhooks", headers=provider.headers, json=BODY)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["provider_id"] == profile["id"]
    assert body["event_types"] == ["booking.cancelled", "booking.created"]
    shown = await client.get(f"/webhooks/{body['id']}", headers=provider.headers)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    listed = await client.get("/webhooks", headers=provider.headers)
    assert [hook["id"] for hook in listed.json()] == [body["id"]]


async def test_another_providers_subscription_is_not_found(client: httpx.AsyncClient) -> None:
    owner, _ = await provider_with_profile(client)
    other, _ = await provider_with_profile(client)
    hook = (await client.post("/webhooks", headers=owner.headers, json=BODY)).json()
    for method, path in [
        ("GET", f"/webhooks/{hook['id']}"),
        ("PATCH", f"/webhooks/{hook['id']}"),
        ("DELETE", f"/webhooks/{hook['id']}"),
        ("POST", f"/webhooks/{hook['id']}/rotate-secret"),
        ("GET", f"/webhooks/{hook['id']}/deliveries"),
    ]:
        json = {} if method == "PATCH" else None
        response = await client.request(method, path, headers=other.headers, json=json)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "webhook_not_found"
    assert (await client.get("/webhooks", headers=other.headers)).json() == []


async def test_clients_may_not_subscribe(client: httpx.AsyncClient) -> None:
    someone = await signed_in(client, "client")
    response = await client.post("/webhooks", headers=someone.headers, json=BODY)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert (await client.get("/webhooks", headers=someone.headers)).status_code == 403


async def test_an_admin_subscribes_to_every_provider_and_sees_every_subscription(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await signed_in_admin(client, settings)
    provider, _ = await provider_with_profile(client)
    theirs = (await client.post("/webhooks", headers=provider.headers, json=BODY)).json()
    mine = await client.post("/webhooks", headers=admin.headers, json=BODY)
    assert mine.status_code == 201
    assert mine.json()["provider_id"] is None
    listed = {hook["id"] for hook in (await client.get("/webhooks", headers=admin.headers)).json()}
    assert listed == {theirs["id"], mine.json()["id"]}
    patched = await client.patch(
        f"/webhooks/{theirs['id']}", headers=admin.headers, json={"is_active": False}
    )
    assert patched.json()["is_active"] is False


async def test_bad_input_is_a_machine_readable_422(client: httpx.AsyncClient) -> None:
    provider, _ = await provider_with_profile(client)
    for body, code in [
        ({**BODY, "event_types": ["booking.exploded"]}, "validation_error"),
        ({**BODY, "event_types": []}, "validation_error"),
        ({**BODY, "url": "not a url"}, "webhook_url_refused"),
        ({**BODY, "url": "ftp://127.0.0.1/x"}, "webhook_url_refused"),
        ({**BODY, "url": "http://10.0.0.1/x"}, "webhook_url_refused"),
        ({**BODY, "url": "http://[::1]:80/x"}, "webhook_url_refused"),
        ({**BODY, "secret": "mine"}, "validation_error"),
    ]:
        response = await client.post("/webhooks", headers=provider.headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == code


async def test_https_only_without_the_development_setting(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    settings.outbound_allow_http = False
    provider, _ = await provider_with_profile(client)
    response = await client.post("/webhooks", headers=provider.headers, json=BODY)
    assert response.status_code == 422
    assert response.json()["details"] == {"reason": "the scheme must be https"}


async def test_a_provider_without_a_profile_is_told_to_make_one(
    client: httpx.AsyncClient,
) -> None:
    provider = await signed_in(client, "provider")
    response = await client.post("/webhooks", headers=provider.headers, json=BODY)
    assert response.status_code == 404
    assert response.json()["code"] == "provider_profile_missing"


async def test_patch_changes_the_events_and_delete_removes(client: httpx.AsyncClient) -> None:
    provider, _ = await provider_with_profile(client)
    hook = (await client.post("/webhooks", headers=provider.headers, json=BODY)).json()
    patched = await client.patch(
        f"/webhooks/{hook['id']}",
        headers=provider.headers,
        json={"event_types": ["availability.changed"], "description": "Sync"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["event_types"] == ["availability.changed"]
    assert patched.json()["description"] == "Sync"
    gone = await client.delete(f"/webhooks/{hook['id']}", headers=provider.headers)
    assert gone.status_code == 204
    assert (
        await client.get(f"/webhooks/{hook['id']}", headers=provider.headers)
    ).status_code == 404


async def test_rotating_keeps_the_old_secret_for_the_overlap(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, _ = await provider_with_profile(client)
    hook = (await client.post("/webhooks", headers=provider.headers, json=BODY)).json()
    rotated = await client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=provider.headers)
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != hook["secret"]
    until = BOOKING_NOW + timedelta(hours=24)
    assert body["previous_secret_valid_until"] == until.isoformat().replace("+00:00", "Z")


async def test_a_transaction_asks_once_who_subscribes_to_a_providers_events(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """``queue.enqueue`` reads a provider's subscriptions once a transaction (a batch that
    changes many of its appointments asks once), each provider's on its first event, and
    every event still reaches whoever wants it: the provider's own subscription and an
    admin's for every provider."""
    owner, subscribed = await provider_with_profile(client)
    _, unsubscribed = await provider_with_profile(client)
    hook = {"url": HOOK, "event_types": ["booking.created"]}
    assert (await client.post("/webhooks", headers=owner.headers, json=hook)).status_code == 201
    admin = await signed_in_admin(client, settings)
    hook = {"url": HOOK, "event_types": ["booking.cancelled"]}
    assert (await client.post("/webhooks", headers=admin.headers, json=hook)).status_code == 201

    def made(profile: dict[str, Any], kind: EventType) -> queue.Event:
        provider_id = uuid.UUID(profile["id"])
        return queue.event(kind, provider_id=provider_id, data={}, now=BOOKING_NOW)

    database = app.state.slotwise.db
    with statements_of(app) as seen:
        async with database.transaction(writes=True) as session:
            await queue.enqueue(session, [made(subscribed, EventType.BOOKING_CREATED)])
            await queue.enqueue(session, [made(subscribed, EventType.BOOKING_CANCELLED)])
            await queue.enqueue(
                session,
                [
                    made(unsubscribed, EventType.BOOKING_CREATED),
                    made(subscribed, EventType.BOOKING_CREATED),
                ],
            )
            await queue.enqueue(session, [made(unsubscribed, EventType.BOOKING_CANCELLED)])
    asked = [s for s in seen if s.startswith("SELECT DISTINCT webhook_subscriptions")]
    assert len(asked) == 2  # the subscribed provider's, then the other's
    async with database.transaction(writes=False) as session:
        found = (await session.execute(select(WebhookDelivery.event_type))).scalars().all()
    # The owner's hook: its provider's two booking.created; the admin's: both cancellations.
    assert sorted(found) == ["booking.cancelled", "booking.cancelled"] + ["booking.created"] * 2


async def test_an_events_data_is_made_only_if_someone_subscribes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Most changes have no subscriber: an event's data (for a booking, the appointment as
    the API shows it) is made when it is queued, and only for an event someone wants;
    the delivery carries it in its payload."""
    owner, subscribed = await provider_with_profile(client)
    _, unsubscribed = await provider_with_profile(client)
    hook = {"url": HOOK, "event_types": ["booking.created"]}
    assert (await client.post("/webhooks", headers=owner.headers, json=hook)).status_code == 201
    made: list[str] = []

    def event(profile: dict[str, Any], kind: EventType) -> queue.Event:
        def data() -> dict[str, Any]:
            made.append(f"{profile['public_handle']} {kind.value}")
            return {"handle": profile["public_handle"]}

        provider_id = uuid.UUID(profile["id"])
        return queue.event(kind, provider_id=provider_id, data=data, now=BOOKING_NOW)

    async with app.state.slotwise.db.transaction(writes=True) as session:
        await queue.enqueue(
            session,
            [
                event(subscribed, EventType.BOOKING_CREATED),
                event(subscribed, EventType.BOOKING_CANCELLED),  # not of its subscription
                event(unsubscribed, EventType.BOOKING_CREATED),
            ],
        )
    assert made == [f"{subscribed['public_handle']} booking.created"]
    async with app.state.slotwise.db.transaction(writes=False) as session:
        (payload,) = (await session.execute(select(WebhookDelivery.payload))).scalars().all()
    assert payload["data"] == {"handle": subscribed["public_handle"]}
    assert (payload["type"], payload["timestamp"]) == ("booking.created", BOOKING_NOW.isoformat())

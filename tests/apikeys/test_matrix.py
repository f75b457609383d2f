"""A key reaches exactly what its owner reaches: another provider's hours, services,
profile, webhooks and appointments answer a key of every scope as they answer the owner's
session (404 for what is not theirs), and nothing of theirs changes. The appointments'
own matrix runs with keys too (tests/booking/test_access.py)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from slotwise.availability.models import DateOverride, TimeOff, WeeklyPattern
from slotwise.booking.models import Appointment
from slotwise.providers.models import Service
from slotwise.webhooks.models import WebhookSubscription
from tests.factories import Clock, api_key, bookable_provider, count_rows, guest_booking

DAY = "2027-03-02"


async def test_another_providers_objects_answer_a_key_as_its_owner(
    client: httpx.AsyncClient, app: FastAPI, clock: Clock
) -> None:
    provider_a, profile_a = await bookable_provider(client)
    provider_b, _ = await bookable_provider(client)
    a = provider_a.headers
    handle = profile_a["public_handle"]
    service = await client.post(
        f"/providers/{handle}/services",
        headers=a,
        json={"name": "Lesson", "duration_minutes": 30},
    )
    override = await client.post(
        f"/providers/{handle}/date-overrides",
        headers=a,
        json={"date": "2027-04-05", "kind": "unavailable"},
    )
    time_off = await client.post(
        f"/providers/{handle}/time-off",
        headers=a,
        json={"start_date": "2027-04-10", "end_date": "2027-04-11"},
    )
    hook = await client.post(
        "/webhooks",
        headers=a,
        json={"url": "https://hooks.example.com/a", "event_types": ["booking.created"]},
    )
    patterns = await client.get(f"/providers/{handle}/availability", headers=a)
    booked = await client.post(
        "/appointments/", json=guest_booking(profile_a["id"], f"{DAY}T10:00:00Z")
    )
    for made in (service, override, time_off, hook, booked):
        assert made.status_code == 201, made.text
    service_id, hook_id, aid = service.json()["id"], hook.json()["id"], booked.json()["id"]
    pattern_id = patterns.json()[0]["id"]

    closed, one_day = {"kind": "unavailable"}, {"end_date": "2027-05-01"}
    evening = {"start_time": "18:00:00", "end_time": "19:00:00"}
    attempts = [
        ("PATCH", f"/providers/{handle}", {"bio": "Not yours"}),
        ("POST", f"/providers/{handle}/services", {"name": "x", "duration_minutes": 30}),
        ("PATCH", f"/providers/{handle}/services/{service_id}", {"name": "Not yours"}),
        ("DELETE", f"/providers/{handle}/services/{service_id}", None),
        ("GET", f"/providers/{handle}/date-overrides", None),
        ("POST", f"/providers/{handle}/date-overrides", {"date": "2027-04-06", **closed}),
        ("DELETE", f"/providers/{handle}/date-overrides/{override.json()['id']}", None),
        ("GET", f"/providers/{handle}/time-off", None),
        ("POST", f"/providers/{handle}/time-off", {"start_date": "2027-05-01", **one_day}),
        ("DELETE", f"/providers/{handle}/time-off/{time_off.json()['id']}", None),
        ("POST", f"/providers/{handle}/availability", {"day_of_week": 0, **evening}),
        ("PATCH", f"/providers/{handle}/availability/{pattern_id}", {"is_active": False}),
        ("DELETE", f"/providers/{handle}/availability/{pattern_id}", None),
        ("GET", f"/webhooks/{hook_id}", None),
        ("PATCH", f"/webhooks/{hook_id}", {"is_active": False}),
        ("POST", f"/webhooks/{hook_id}/rotate-secret", None),
        ("GET", f"/webhooks/{hook_id}/deliveries", None),
        ("DELETE", f"/webhooks/{hook_id}", None),
        ("GET", f"/appointments/{aid}", None),
        ("GET", f"/appointments/{aid}/export.ics", None),
        ("PATCH", f"/appointments/{aid}/status", {"status": "confirmed"}),
        ("POST", f"/appointments/{aid}/cancel", {}),
    ]  # fmt: skip
    key_b = await api_key(client, provider_b)  # every scope
    before = {
        model: await count_rows(app, model)
        for model in (Service, DateOverride, TimeOff, WeeklyPattern, WebhookSubscription)
    }
    refusals = []
    for method, path, body in attempts:
        as_owner = await client.request(method, path, headers=provider_b.headers, json=body)
        as_key = await client.request(method, path, headers=key_b, json=body)
        assert as_key.status_code == as_owner.status_code, (method, path, as_key.text)
        if method == "GET" and as_owner.status_code == 200:  # what anyone may read
            assert as_key.json() == as_owner.json(), path
            continue
        assert as_key.json()["code"] == as_owner.json()["code"], (method, path)
        assert as_key.status_code in (403, 404), (method, path, as_key.text)
        refusals.append((method, path, as_key.status_code))
    public = {(m, p) for m, p, _ in attempts} - {(m, p) for m, p, _ in refusals}
    assert public == {
        ("GET", f"/providers/{handle}/date-overrides"),
        ("GET", f"/providers/{handle}/time-off"),
    }
    after = {model: await count_rows(app, model) for model in before}
    assert after == before
    assert (await client.get(f"/webhooks/{hook_id}", headers=a)).json()["is_active"] is True
    assert await count_rows(app, Appointment, status="pending") == 1
    # The key of A's own reaches the same objects.
    key_a = await api_key(client, provider_a)
    assert (await client.get(f"/webhooks/{hook_id}", headers=key_a)).status_code == 200
    assert (await client.get(f"/appointments/{aid}", headers=key_a)).status_code == 200

"""Every transition, legal and illegal; the cancellation window at its edge; reschedule."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import (
    Account,
    Clock,
    bookable_provider,
    guest_booking,
    signed_in,
    signed_in_admin,
)

DAY = "2027-03-02"


async def _booked(
    client: httpx.AsyncClient, *, requires_confirmation: bool = True, window: int = 120
) -> tuple[Account, Account, dict[str, object]]:
    provider, profile = await bookable_provider(
        client, requires_confirmation=requires_confirmation, cancellation_window_minutes=window
    )
    customer = await signed_in(client)
    response = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": profile["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert response.status_code == 201, response.text
    return provider, customer, response.json()


async def _status(
    client: httpx.AsyncClient, account: Account, appointment_id: object, status: str
) -> httpx.Response:
    return await client.patch(
        f"/appointments/{appointment_id}/status",
        headers=account.headers,
        json={"status": status, "reason": f"to {status}"},
    )


@pytest.mark.parametrize("target", ["confirmed", "declined", "cancelled"])
async def test_pending_goes_to_each_allowed_status(
    client: httpx.AsyncClient, clock: Clock, target: str
) -> None:
    provider, _, appointment = await _booked(client)
    response = await _status(client, provider, appointment["id"], target)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == target
    last = body["history"][-1]
    assert (last["from_status"], last["to_status"], last["actor_role"]) == (
        "pending",
        target,
        "provider",
    )
    assert last["reason"] == f"to {target}"


async def test_illegal_transitions_are_409(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, _, appointment = await _booked(client)
    aid = appointment["id"]
    assert (await _status(client, provider, aid, "declined")).status_code == 200
    for target in ("confirmed", "cancelled", "declined"):
        response = await _status(client, provider, aid, target)
        assert response.status_code == 409, target
        assert response.json()["code"] == "invalid_transition"
    clock.now = clock.now + timedelta(days=2)
    for mark in ("mark-completed", "mark-no-show"):
        response = await client.post(f"/appointments/{aid}/{mark}", headers=provider.headers)
        assert response.json()["code"] == "invalid_transition"


async def test_confirmed_goes_to_cancelled_completed_or_no_show(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    for final in ("cancelled", "mark-completed", "mark-no-show"):
        provider, _, appointment = await _booked(client)
        aid = appointment["id"]
        assert (await _status(client, provider, aid, "confirmed")).status_code == 200
        if final == "cancelled":
            response = await _status(client, provider, aid, "cancelled")
        else:
            clock.now = clock.now.replace(day=2, hour=10)
            response = await client.post(f"/appointments/{aid}/{final}", headers=provider.headers)
            clock.now = clock.now.replace(day=1, hour=12)
        assert response.status_code == 200, (final, response.text)
        after = response.json()["status"]
        # Nothing leaves a final status.
        assert (await _status(client, provider, aid, "confirmed")).status_code == 409, after
        pending_again = await _status(client, provider, aid, "cancelled")
        assert pending_again.status_code == 409


async def test_confirmed_cannot_be_declined(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, _, appointment = await _booked(client)
    await _status(client, provider, appointment["id"], "confirmed")
    response = await _status(client, provider, appointment["id"], "declined")
    assert response.status_code == 409


async def test_marking_waits_for_the_start(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, customer, appointment = await _booked(client)
    aid = appointment["id"]
    await _status(client, provider, aid, "confirmed")
    early = await client.post(f"/appointments/{aid}/mark-completed", headers=provider.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "appointment_not_started"
    by_client = await client.post(f"/appointments/{aid}/mark-no-show", headers=customer.headers)
    assert by_client.status_code == 403
    clock.now = clock.now.replace(day=2, hour=10)  # exactly the start
    done = await client.post(f"/appointments/{aid}/mark-completed", headers=provider.headers)
    assert done.status_code == 200


async def test_client_can_neither_confirm_nor_decline(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, customer, appointment = await _booked(client)
    for status in ("confirmed", "declined"):
        response = await _status(client, customer, appointment["id"], status)
        assert response.status_code == 403


async def test_cancellation_window_at_its_exact_edge(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    # Start 2027-03-02 10:00Z, window 120 minutes: closes at 08:00Z exactly.
    _, customer, first = await _booked(client)
    clock.now = clock.now.replace(day=2, hour=7, minute=59, second=59)
    open_cancel = await client.post(
        f"/appointments/{first['id']}/cancel",
        headers=customer.headers,
        json={"reason": "Schedule conflict"},
    )
    assert open_cancel.status_code == 200, open_cancel.text
    assert open_cancel.json()["cancel_reason"] == "Schedule conflict"

    clock.now = clock.now.replace(day=1, hour=12, minute=0, second=0)
    _, customer, second = await _booked(client)
    clock.now = clock.now.replace(day=2, hour=8, minute=0, second=0)
    closed = await client.delete(f"/appointments/{second['id']}", headers=customer.headers)
    assert closed.status_code == 409
    assert closed.json()["code"] == "policy_window_closed"
    moved = await client.post(
        f"/appointments/{second['id']}/reschedule",
        headers=customer.headers,
        json={"new_start_time": f"{DAY}T14:00:00Z"},
    )
    assert moved.json()["code"] == "policy_window_closed"


async def test_provider_and_admin_override_the_window(
    client: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    provider, _, first = await _booked(client)
    clock.now = clock.now.replace(day=2, hour=9)
    by_provider = await client.post(f"/appointments/{first['id']}/cancel", headers=provider.headers)
    assert by_provider.status_code == 200
    clock.now = clock.now.replace(day=1, hour=12)
    _, _, second = await _booked(client)
    admin = await signed_in_admin(client, settings)
    clock.now = clock.now.replace(day=2, hour=9, minute=30)
    by_admin = await client.delete(
        f"/appointments/{second['id']}", headers=admin.headers, params={"reason": "Closed"}
    )
    assert by_admin.status_code == 200
    assert by_admin.json()["history"][-1]["actor_role"] == "admin"


async def test_cancelled_and_declined_free_the_slot(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, customer, appointment = await _booked(client)
    slots_url = f"/providers/{appointment['provider_id']}/slots"

    async def free_at_ten() -> bool:
        slots = (await client.get(slots_url, params={"date": DAY})).json()["slots"]
        return any(s["start_at"].startswith(f"{DAY}T10:00") for s in slots)

    assert not await free_at_ten()
    await client.post(f"/appointments/{appointment['id']}/cancel", headers=customer.headers)
    assert await free_at_ten()
    again = await client.post(
        "/appointments/", json=guest_booking(appointment["provider_id"], f"{DAY}T10:00:00Z")
    )
    assert again.status_code == 201
    await _status(client, provider, again.json()["id"], "declined")
    assert await free_at_ten()
    # The cancelled record stays for history.
    kept = await client.get(f"/appointments/{appointment['id']}", headers=customer.headers)
    assert kept.json()["status"] == "cancelled"


async def test_reschedule_moves_atomically(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, customer, appointment = await _booked(client)
    aid = appointment["id"]
    await _status(client, provider, aid, "confirmed")
    other = await client.post(
        "/appointments/", json=guest_booking(appointment["provider_id"], f"{DAY}T14:00:00Z")
    )
    assert other.status_code == 201
    refused = await client.post(
        f"/appointments/{aid}/reschedule",
        headers=customer.headers,
        json={"new_start_time": f"{DAY}T14:00:00Z", "reason": "Later please"},
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "slot_unavailable"
    unchanged = await client.get(f"/appointments/{aid}", headers=customer.headers)
    assert unchanged.json()["start_at"] == f"{DAY}T10:00:00Z"
    assert unchanged.json()["status"] == "confirmed"
    off_hours = await client.post(
        f"/appointments/{aid}/reschedule",
        headers=customer.headers,
        json={"new_start_time": f"{DAY}T20:00:00Z"},
    )
    assert off_hours.json()["code"] == "outside_availability"
    moved = await client.post(
        f"/appointments/{aid}/reschedule",
        headers=customer.headers,
        json={
            "new_start_time": f"{DAY}T15:00:00Z",
            "new_end_time": f"{DAY}T16:00:00Z",
            "reason": "Later please",
        },
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["start_at"] == f"{DAY}T15:00:00Z"
    assert body["status"] == "pending"  # the provider confirms the new time
    event = body["history"][-1]
    assert event["action"] == "rescheduled"
    assert event["from_start_at"] == f"{DAY}T10:00:00Z"
    assert event["to_start_at"] == f"{DAY}T15:00:00Z"
    assert event["reason"] == "Later please"
    # The old time is free again, the new one taken.
    slots = (
        await client.get(f"/providers/{appointment['provider_id']}/slots", params={"date": DAY})
    ).json()["slots"]
    starts = {s["start_at"][11:16] for s in slots}
    assert "10:00" in starts
    assert "15:00" not in starts


async def test_reschedule_overlapping_its_own_time(client: httpx.AsyncClient, clock: Clock) -> None:
    provider, _, appointment = await _booked(client)
    await client.put("/providers/me", headers=provider.headers, json={"slot_interval_minutes": 30})
    moved = await client.post(
        f"/appointments/{appointment['id']}/reschedule",
        headers=provider.headers,
        json={"new_start_time": f"{DAY}T10:30:00Z"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "pending"  # a provider's move keeps the status


async def test_finished_appointments_cannot_be_rescheduled(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    provider, customer, appointment = await _booked(client)
    await _status(client, provider, appointment["id"], "cancelled")
    response = await client.post(
        f"/appointments/{appointment['id']}/reschedule",
        headers=customer.headers,
        json={"new_start_time": f"{DAY}T14:00:00Z"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


async def test_notes_update_and_history(client: httpx.AsyncClient, clock: Clock) -> None:
    _, customer, appointment = await _booked(client)
    response = await client.patch(
        f"/appointments/{appointment['id']}",
        headers=customer.headers,
        json={"notes": "Bring the workbook"},
    )
    assert response.status_code == 200
    assert response.json()["notes"] == "Bring the workbook"
    assert response.json()["history"][-1]["action"] == "notes_updated"
    refused = await client.patch(
        f"/appointments/{appointment['id']}",
        headers=customer.headers,
        json={"notes": "x", "status": "confirmed"},
    )
    assert refused.status_code == 422


async def test_guest_flows(client: httpx.AsyncClient, clock: Clock) -> None:
    _, profile = await bookable_provider(client)
    booked = await client.post(
        "/appointments/", json=guest_booking(profile["id"], f"{DAY}T10:00:00Z")
    )
    token = booked.json()["manage_token"]
    seen = await client.get(f"/bookings/{token}")
    assert seen.status_code == 200
    assert seen.json()["guest"]["name"] == "Guest"
    moved = await client.post(
        f"/bookings/{token}/reschedule", json={"new_start_time": f"{DAY}T11:00:00Z"}
    )
    assert moved.status_code == 200
    assert moved.json()["history"][-1]["actor_role"] == "guest"
    clock.now = clock.now.replace(day=2, hour=9, minute=30)
    late = await client.post(f"/bookings/{token}/cancel", json={"reason": "Sick"})
    assert late.status_code == 409
    assert late.json()["code"] == "policy_window_closed"
    clock.now = clock.now.replace(day=1, hour=12, minute=0)
    cancelled = await client.post(f"/bookings/{token}/cancel", json={"reason": "Sick"})
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.get("/bookings/" + "x" * 43)).status_code == 404

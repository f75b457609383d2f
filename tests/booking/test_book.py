"""Booking: who can book what, each refusal with its code, idempotency."""

from __future__ import annotations

import httpx
import pytest

from slotwise.config import Settings
from tests.factories import (
    Clock,
    bookable_provider,
    guest_booking,
    signed_in,
    signed_in_admin,
    unique_email,
)

DAY = "2027-03-02"  # a Tuesday, the day after the test clock's now


async def test_signed_in_client_books_and_the_slot_goes(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    response = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={
            "provider_id": provider["id"],
            "start_datetime": f"{DAY}T10:00:00Z",
            "end_datetime": f"{DAY}T11:00:00Z",
            "notes": "First lesson",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"  # providers confirm by default (seed 000)
    assert body["client_id"] == customer.id
    assert body["start_at"] == f"{DAY}T10:00:00Z"
    assert body["manage_token"] is None
    assert [(e["action"], e["to_status"]) for e in body["history"]] == [("created", "pending")]
    slots = await client.get(f"/providers/{provider['id']}/slots", params={"date": DAY})
    starts = [s["start_at"][11:16] for s in slots.json()["slots"]]
    assert "10:00" not in starts
    assert "09:00" in starts
    assert "11:00" in starts


async def test_provider_without_confirmation_confirms_at_once(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, requires_confirmation=False)
    response = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T09:00:00Z")
    )
    assert response.json()["status"] == "confirmed"


async def test_seed_field_names_and_offsetless_times(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client, timezone="America/Guayaquil")
    customer = await signed_in(client)
    # Seed 003's names; no offset: read in the provider's zone (UTC-5).
    response = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={
            "staff_id": provider["id"],
            "start_time": f"{DAY}T10:00:00",
            "end_time": f"{DAY}T11:00:00",
            "notes": "Initial consultation",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["start_at"] == f"{DAY}T10:00:00-05:00"
    for name in ("tutor_id", "doctor_id"):
        other = await client.post(
            "/appointments/",
            json={
                name: provider["id"],
                "start_datetime": f"{DAY}T16:00:00Z",
                "guest_details": {"name": "G", "email": unique_email()},
            },
        )
        # 16:00Z is 11:00 in Guayaquil: free the first time, taken the second.
        assert other.status_code in (201, 409), other.text
    # An explicit offset is taken as given: 15:00Z is 10:00 local, already taken.
    taken = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T15:00:00+00:00")
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "slot_unavailable"


async def test_end_defaults_to_the_duration_and_must_match(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    account, provider = await bookable_provider(client)
    intro = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro", "duration_minutes": 30},
    )
    ok = await client.post(
        "/appointments/",
        json=guest_booking(provider["id"], f"{DAY}T09:30:00Z", service_id=intro.json()["id"]),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["end_at"] == f"{DAY}T10:00:00Z"
    assert ok.json()["service_id"] == intro.json()["id"]
    wrong = await client.post(
        "/appointments/",
        json=guest_booking(provider["id"], f"{DAY}T11:00:00Z", end_datetime=f"{DAY}T11:45:00Z"),
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "duration_mismatch"


@pytest.mark.parametrize(
    ("start", "code", "status"),
    [
        (f"{DAY}T08:00:00Z", "outside_availability", 422),  # before opening
        (f"{DAY}T16:30:00Z", "outside_availability", 422),  # would end after closing
        (f"{DAY}T09:17:00Z", "outside_availability", 422),  # not on the slot grid
        ("2027-03-01T09:00:00Z", "too_soon", 422),  # in the past
        ("2027-03-01T13:00:00Z", "too_soon", 422),  # inside the 2-hour notice
        ("2028-03-10T09:00:00Z", "too_far", 422),  # beyond the 365-day horizon
    ],
)
async def test_refusals_each_have_their_code(
    client: httpx.AsyncClient, clock: Clock, start: str, code: str, status: int
) -> None:
    _, provider = await bookable_provider(client, min_notice_minutes=120)
    response = await client.post("/appointments/", json=guest_booking(provider["id"], start))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_provider_not_accepting(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client, accepting_bookings=False)
    response = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T09:00:00Z")
    )
    assert response.status_code == 409
    assert response.json()["code"] == "provider_not_accepting"


async def test_unknown_provider_and_service(client: httpx.AsyncClient, clock: Clock) -> None:
    missing = await client.post(
        "/appointments/",
        json=guest_booking("00000000-0000-0000-0000-000000000000", f"{DAY}T09:00:00Z"),
    )
    assert missing.status_code == 404
    _, provider = await bookable_provider(client)
    no_service = await client.post(
        "/appointments/",
        json=guest_booking(
            provider["id"], f"{DAY}T09:00:00Z", service_id="00000000-0000-0000-0000-000000000000"
        ),
    )
    assert no_service.status_code == 404
    assert no_service.json()["code"] == "service_not_found"


async def test_guest_details_rules(client: httpx.AsyncClient, clock: Clock) -> None:
    account, provider = await bookable_provider(client)
    anonymous = await client.post(
        "/appointments/",
        json={"provider_id": provider["id"], "start_datetime": f"{DAY}T09:00:00Z"},
    )
    assert anonymous.status_code == 422
    assert anonymous.json()["code"] == "guest_details_required"
    customer = await signed_in(client)
    both = await client.post(
        "/appointments/",
        headers=customer.headers,
        json=guest_booking(provider["id"], f"{DAY}T09:00:00Z"),
    )
    assert both.status_code == 422
    assert both.json()["code"] == "guest_details_not_allowed"
    self_booking = await client.post(
        "/appointments/",
        headers=account.headers,
        json={"provider_id": provider["id"], "start_datetime": f"{DAY}T09:00:00Z"},
    )
    assert self_booking.status_code == 422
    assert self_booking.json()["code"] == "cannot_book_yourself"
    bad_email = await client.post(
        "/appointments/",
        json={
            "provider_id": provider["id"],
            "start_datetime": f"{DAY}T09:00:00Z",
            "guest_details": {"name": "G", "email": "nope"},
        },
    )
    assert bad_email.status_code == 422


async def test_privileged_fields_are_refused(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    for field, value in (
        ("status", "confirmed"),
        ("client_id", provider["user_id"]),
        ("blocked_start_at", f"{DAY}T09:00:00Z"),
    ):
        body = guest_booking(provider["id"], f"{DAY}T09:00:00Z", **{field: value})
        response = await client.post("/appointments/", json=body)
        assert response.status_code == 422, field


async def test_client_cannot_hold_two_overlapping_appointments(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, first = await bookable_provider(client)
    _, second = await bookable_provider(client)
    customer = await signed_in(client)
    booked = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": first["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert booked.status_code == 201
    clash = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": second["id"], "start_datetime": f"{DAY}T10:00:00Z"},
    )
    assert clash.status_code == 409
    assert clash.json()["code"] == "client_conflict"
    back_to_back = await client.post(
        "/appointments/",
        headers=customer.headers,
        json={"provider_id": second["id"], "start_datetime": f"{DAY}T11:00:00Z"},
    )
    assert back_to_back.status_code == 201


async def test_back_to_back_accepted_and_buffers_respected(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, plain = await bookable_provider(client)
    for hour in ("09", "10", "11"):
        response = await client.post(
            "/appointments/", json=guest_booking(plain["id"], f"{DAY}T{hour}:00:00Z")
        )
        assert response.status_code == 201, hour
    _, buffered = await bookable_provider(client, buffer_after_minutes=30, slot_interval_minutes=30)
    first = await client.post(
        "/appointments/", json=guest_booking(buffered["id"], f"{DAY}T09:00:00Z")
    )
    assert first.status_code == 201
    inside_buffer = await client.post(
        "/appointments/", json=guest_booking(buffered["id"], f"{DAY}T10:00:00Z")
    )
    assert inside_buffer.status_code == 409
    assert inside_buffer.json()["code"] == "slot_unavailable"
    after_buffer = await client.post(
        "/appointments/", json=guest_booking(buffered["id"], f"{DAY}T10:30:00Z")
    )
    assert after_buffer.status_code == 201
    slots = await client.get(f"/providers/{buffered['id']}/slots", params={"date": DAY})
    starts = [s["start_at"][11:16] for s in slots.json()["slots"]]
    assert starts[:2] == ["12:00", "12:30"]


async def test_blocked_client_cannot_book(
    client: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    account, provider = await bookable_provider(client)
    email = unique_email("flaky")
    for hour in ("09", "10", "11"):
        booked = await client.post(
            "/appointments/", json=guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z", email)
        )
        appointment_id = booked.json()["id"]
        await client.patch(
            f"/appointments/{appointment_id}/status",
            headers=account.headers,
            json={"status": "confirmed"},
        )
        clock.now = clock.now.replace(day=2, hour=int(hour), minute=5)
        marked = await client.post(
            f"/appointments/{appointment_id}/mark-no-show", headers=account.headers
        )
        assert marked.status_code == 200, marked.text
        clock.now = clock.now.replace(day=1, hour=12, minute=0)
    refused = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z", email)
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "client_blocked"
    admin = await signed_in_admin(client, settings)
    blocked = await client.get(
        "/client-standings/", headers=admin.headers, params={"blocked": True}
    )
    key = f"guest:{email}"  # a guest's standing: its own, not the account's of that email
    assert [(s["email"], s["no_show_count"]) for s in blocked.json()["items"]] == [(key, 3)]
    unblocked = await client.patch(
        f"/client-standings/{key}",
        headers=admin.headers,
        json={"blocked": False, "reset_no_shows": True},
    )
    assert unblocked.json() == {"email": key, "no_show_count": 0, "blocked": False}
    again = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T14:00:00Z", email)
    )
    assert again.status_code == 201
    customer = await signed_in(client)
    assert (await client.get("/client-standings/", headers=customer.headers)).status_code == 403


async def test_idempotency_key_replays_and_refuses_another_body(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    body = {"provider_id": provider["id"], "start_datetime": f"{DAY}T09:00:00Z"}
    headers = {**customer.headers, "Idempotency-Key": "book-once-123"}
    first = await client.post("/appointments/", headers=headers, json=body)
    again = await client.post("/appointments/", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = await client.get("/appointments/", headers=customer.headers)
    assert listed.json()["total"] == 1
    other = await client.post(
        "/appointments/", headers=headers, json={**body, "start_datetime": f"{DAY}T10:00:00Z"}
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_guest_idempotent_replay_gives_a_working_token(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    body = guest_booking(provider["id"], f"{DAY}T09:00:00Z")
    headers = {"Idempotency-Key": "guest-key"}
    first = await client.post("/appointments/", headers=headers, json=body)
    again = await client.post("/appointments/", headers=headers, json=body)
    assert again.json()["id"] == first.json()["id"]
    token = again.json()["manage_token"]
    assert token
    assert (await client.get(f"/bookings/{token}")).status_code == 200
    assert (await client.get(f"/bookings/{first.json()['manage_token']}")).status_code == 404


async def test_manage_token_is_long_and_random(client: httpx.AsyncClient, clock: Clock) -> None:
    _, provider = await bookable_provider(client)
    tokens = set()
    for hour in ("09", "10"):
        response = await client.post(
            "/appointments/", json=guest_booking(provider["id"], f"{DAY}T{hour}:00:00Z")
        )
        tokens.add(response.json()["manage_token"])
    assert len(tokens) == 2
    assert all(len(t) >= 43 for t in tokens)  # 256 bits in URL-safe base64


async def test_datetime_without_offset_in_a_dst_gap_follows_rfc_5545(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    # 2027-03-14 is New York's spring-forward day; 02:30 does not exist there.
    _, provider = await bookable_provider(
        client,
        timezone="America/New_York",
        hours=("00:00:00", "06:00:00"),
        slot_interval_minutes=30,
        session_duration_minutes=60,
    )
    response = await client.post(
        "/appointments/", json=guest_booking(provider["id"], "2027-03-14T02:30:00")
    )
    assert response.status_code == 201, response.text
    # Read with the offset before the gap: 02:30 EST = 07:30Z = 03:30 EDT.
    assert response.json()["start_at"] == "2027-03-14T03:30:00-04:00"


async def test_seed_paths_without_the_trailing_slash(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    _, provider = await bookable_provider(client)
    customer = await signed_in(client)
    booked = await client.post(
        "/appointments",
        headers=customer.headers,
        json={"doctor_id": provider["public_handle"], "start_datetime": f"{DAY}T09:00:00Z"},
    )
    assert booked.status_code == 201, booked.text  # a handle names the provider too
    listed = await client.get("/appointments", headers=customer.headers)
    assert listed.status_code == 200
    assert listed.json()["total"] == 1


async def test_slots_hide_bookings_late_on_the_last_day(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    """A one-day window must still see the evening's bookings (a window-bound regression)."""
    _, provider = await bookable_provider(client, hours=("09:00:00", "23:00:00"))
    booked = await client.post(
        "/appointments/", json=guest_booking(provider["id"], f"{DAY}T21:00:00Z")
    )
    assert booked.status_code == 201
    slots = await client.get(f"/providers/{provider['id']}/slots", params={"date": DAY})
    starts = [s["start_at"][11:16] for s in slots.json()["slots"]]
    assert "21:00" not in starts
    assert "20:00" in starts
    assert "22:00" in starts

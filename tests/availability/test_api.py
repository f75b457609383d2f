"""Weekly patterns, date overrides, time off, and the slot endpoints with their seed forms."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from slotwise.config import Settings
from slotwise.state import get_now
from tests.factories import (
    add_pattern,
    provider_with_profile,
    signed_in,
    signed_in_admin,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday


@pytest.fixture
def fixed_clock(app: FastAPI) -> Iterator[datetime]:
    app.dependency_overrides[get_now] = lambda: NOW
    yield NOW
    app.dependency_overrides.pop(get_now, None)


async def test_weekly_pattern_crud(client: httpx.AsyncClient) -> None:
    account, profile = await provider_with_profile(client)
    created = await add_pattern(client, account, 1, "09:00:00", "12:00:00")
    assert created["day_name"] == "tuesday"
    await add_pattern(client, account, 1, "13:00:00", "17:00:00")  # a lunch break is a gap
    listed = await client.get("/providers/me/availability", headers=account.headers)
    assert [(p["start_time"], p["end_time"]) for p in listed.json()] == [
        ("09:00:00", "12:00:00"),
        ("13:00:00", "17:00:00"),
    ]
    pid = created["id"]
    updated = await client.put(
        f"/providers/me/availability/{pid}", headers=account.headers, json={"end_time": "12:30:00"}
    )
    assert updated.status_code == 200
    assert updated.json()["end_time"] == "12:30:00"
    deactivated = await client.put(
        f"/providers/me/availability/{pid}", headers=account.headers, json={"is_active": False}
    )
    assert deactivated.json()["is_active"] is False
    public = await client.get(f"/providers/{profile['public_handle']}/availability")
    assert len(public.json()) == 1  # the inactive one is not public
    own = await client.get("/providers/me/availability", headers=account.headers)
    assert len(own.json()) == 2
    deleted = await client.delete(f"/providers/me/availability/{pid}", headers=account.headers)
    assert deleted.status_code == 204
    assert (
        len((await client.get("/providers/me/availability", headers=account.headers)).json()) == 1
    )


async def test_overlapping_range_is_409(client: httpx.AsyncClient) -> None:
    account, _ = await provider_with_profile(client)
    first = await add_pattern(client, account, 0, "09:00:00", "12:00:00")
    overlap = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={"day_of_week": 0, "start_time": "11:00:00", "end_time": "13:00:00"},
    )
    assert overlap.status_code == 409
    assert overlap.json()["code"] == "availability_overlap"
    assert overlap.json()["details"]["conflicting_id"] == first["id"]
    # Touching is fine; another day is fine; a non-overlapping validity period is fine.
    await add_pattern(client, account, 0, "12:00:00", "13:00:00")
    await add_pattern(client, account, 1, "09:00:00", "12:00:00")
    later = await client.post(
        "/providers/me/availability",
        headers=account.headers,
        json={
            "day_of_week": 1,
            "start_time": "10:00:00",
            "end_time": "11:00:00",
            "valid_from_date": "2030-01-01",
        },
    )
    assert later.status_code == 409  # the first has no end date, so it overlaps 2030 too
    second = await add_pattern(client, account, 2, "09:00:00", "10:00:00")
    moved = await client.put(
        f"/providers/me/availability/{second['id']}",
        headers=account.headers,
        json={"day_of_week": 0, "start_time": "08:00:00", "end_time": "09:30:00"},
    )
    assert moved.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"day_of_week": 0, "start_time": "12:00:00", "end_time": "12:00:00"},
        {"day_of_week": 0, "start_time": "12:00:00", "end_time": "09:00:00"},
        {"day_of_week": 7, "start_time": "09:00:00", "end_time": "10:00:00"},
        {"day_of_week": -1, "start_time": "09:00:00", "end_time": "10:00:00"},
        {"day_of_week": 0, "start_time": "25:00:00", "end_time": "26:00:00"},
        {
            "day_of_week": 0,
            "start_time": "09:00:00",
            "end_time": "10:00:00",
            "valid_from_date": "2026-05-01",
            "valid_until_date": "2026-04-01",
        },
        {"day_of_week": 0, "start_time": "09:00:00"},
        # Found by fuzzing: offsets on wall times compared as instants, then stored without.
        {"day_of_week": 6, "start_time": "22:01:47Z", "end_time": "15:27:41-20:21"},
        {"day_of_week": 6, "start_time": "09:00:00+02:00", "end_time": "10:00:00+02:00"},
    ],
)
async def test_invalid_pattern_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    account, _ = await provider_with_profile(client)
    response = await client.post("/providers/me/availability", headers=account.headers, json=body)
    assert response.status_code == 422


async def test_update_to_an_inverted_range_is_422(client: httpx.AsyncClient) -> None:
    account, _ = await provider_with_profile(client)
    pattern = await add_pattern(client, account, 0, "09:00:00", "12:00:00")
    response = await client.put(
        f"/providers/me/availability/{pattern['id']}",
        headers=account.headers,
        json={"start_time": "13:00:00"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_time_range"


async def test_someone_elses_pattern_is_404(client: httpx.AsyncClient) -> None:
    owner, _ = await provider_with_profile(client)
    other, _ = await provider_with_profile(client)
    pattern = await add_pattern(client, owner, 0, "09:00:00", "12:00:00")
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method,
            f"/providers/me/availability/{pattern['id']}",
            headers=other.headers,
            json={"end_time": "18:00:00"} if method == "PUT" else None,
        )
        assert response.status_code == 404, method
        assert response.json()["code"] == "availability_not_found"
    intruder = await signed_in(client)
    forbidden = await client.post(
        f"/providers/{owner.id}/availability",
        headers=intruder.headers,
        json={"day_of_week": 3, "start_time": "09:00:00", "end_time": "10:00:00"},
    )
    assert forbidden.status_code == 403


async def test_unknown_handle_is_404(client: httpx.AsyncClient) -> None:
    for path in (
        "/providers/nobody-here/availability",
        "/providers/nobody-here/slots?date=2026-03-02",
        "/providers/nobody-here/date-overrides",
        "/providers/nobody-here/time-off",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "provider_not_found"


async def test_seed_forms_for_setting_hours(client: httpx.AsyncClient, settings: Settings) -> None:
    account, profile = await provider_with_profile(client)
    seed_002 = await client.post(
        "/doctors/availability",
        headers=account.headers,
        json={"day_of_week": 0, "start_time": "09:00:00", "end_time": "10:00:00"},
    )
    assert seed_002.status_code == 201
    seed_003 = await client.post(
        "/availability/",
        headers=account.headers,
        json={
            "day_of_week": 1,
            "start_time": "09:00:00",
            "end_time": "17:00:00",
            "is_recurring": True,
        },
    )
    assert seed_003.status_code == 201
    admin = await signed_in_admin(client, settings)
    for_staff = await client.post(
        "/availability/",
        headers=admin.headers,
        json={
            "staff_id": account.id,
            "specific_date": "2026-03-07",
            "start_time": "10:00:00",
            "end_time": "12:00:00",
            "is_recurring": False,
        },
    )
    assert for_staff.status_code == 201
    assert for_staff.json()["kind"] == "add"
    listed = await client.get("/availability/", params={"staff_id": profile["id"]})
    assert [p["day_of_week"] for p in listed.json()["items"]] == [0, 1]
    client_account = await signed_in(client)
    refused = await client.post(
        "/availability/",
        headers=client_account.headers,
        json={
            "staff_id": account.id,
            "day_of_week": 2,
            "start_time": "09:00:00",
            "end_time": "10:00:00",
        },
    )
    assert refused.status_code == 403
    incomplete = await client.post(
        "/availability/",
        headers=account.headers,
        json={"start_time": "09:00:00", "end_time": "10:00:00", "is_recurring": True},
    )
    assert incomplete.status_code == 422


async def test_seed_003_lists_availability_without_parameters(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Seed 003's "List availability slots", no sign-in: the active weekly patterns of the
    providers listed in public, paginated; staff_id narrows it to one of them."""
    first, first_profile = await provider_with_profile(client, public_handle="aa-first")
    second, second_profile = await provider_with_profile(client, public_handle="bb-second")
    gone, gone_profile = await provider_with_profile(client, public_handle="cc-gone")
    await add_pattern(client, first, 2, "09:00:00", "12:00:00")
    await add_pattern(client, first, 0, "09:00:00", "12:00:00")
    await add_pattern(client, second, 1, "10:00:00", "11:00:00")
    switched_off = await add_pattern(client, second, 3, "10:00:00", "11:00:00")
    await client.patch(
        f"/providers/me/availability/{switched_off['id']}",
        headers=second.headers,
        json={"is_active": False},
    )
    await add_pattern(client, gone, 4, "09:00:00", "10:00:00")
    admin = await signed_in_admin(client, settings)
    deactivated = await client.patch(
        f"/users/{gone.id}", headers=admin.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200

    listed = await client.get("/availability/")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 20, 0)
    assert [(p["provider_id"], p["day_name"]) for p in body["items"]] == [
        (first_profile["id"], "monday"),
        (first_profile["id"], "wednesday"),
        (second_profile["id"], "tuesday"),
    ]
    page = await client.get("/availability", params={"limit": 1, "offset": 2})
    assert page.status_code == 200
    assert [p["provider_id"] for p in page.json()["items"]] == [second_profile["id"]]
    assert page.json()["total"] == 3
    one = await client.get("/availability/", params={"staff_id": second.id})
    assert [p["day_name"] for p in one.json()["items"]] == ["tuesday"]
    hidden = await client.get("/availability/", params={"staff_id": gone_profile["id"]})
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "provider_not_found"
    too_many = await client.get("/availability/", params={"limit": 101})
    assert too_many.status_code == 422


async def test_date_overrides_and_time_off(
    client: httpx.AsyncClient, fixed_clock: datetime
) -> None:
    account, profile = await provider_with_profile(client, timezone="UTC", max_advance_days=365)
    for day in range(7):
        await add_pattern(client, account, day, "09:00:00", "12:00:00")
    handle = profile["public_handle"]

    async def starts(on: str) -> list[str]:
        response = await client.get(f"/providers/{handle}/slots", params={"date": on})
        assert response.status_code == 200, response.text
        return [s["start_at"][11:16] for s in response.json()["slots"]]

    assert await starts("2026-03-02") == ["09:00", "10:00", "11:00"]
    replace = await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={
            "date": "2026-03-02",
            "kind": "replace",
            "ranges": [{"start_time": "14:00:00", "end_time": "16:00:00"}],
        },
    )
    assert replace.status_code == 201
    assert await starts("2026-03-02") == ["14:00", "15:00"]
    await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={
            "date": "2026-03-03",
            "kind": "add",
            "ranges": [{"start_time": "18:00:00", "end_time": "19:00:00"}],
        },
    )
    assert await starts("2026-03-03") == ["09:00", "10:00", "11:00", "18:00"]
    off = await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={"date": "2026-03-04", "kind": "unavailable", "note": "Dentist"},
    )
    assert await starts("2026-03-04") == []
    leave = await client.post(
        "/providers/me/time-off",
        headers=account.headers,
        json={"start_date": "2026-03-05", "end_date": "2026-03-06", "reason": "Holiday"},
    )
    assert leave.status_code == 201
    assert await starts("2026-03-05") == []
    assert await starts("2026-03-06") == []
    assert await starts("2026-03-07") == ["09:00", "10:00", "11:00"]

    listed = await client.get(
        f"/providers/{handle}/date-overrides", params={"from": "2026-03-03", "to": "2026-03-04"}
    )
    assert [o["kind"] for o in listed.json()] == ["add", "unavailable"]
    assert len((await client.get(f"/providers/{handle}/time-off")).json()) == 1

    removed = await client.delete(
        f"/providers/me/date-overrides/{off.json()['id']}", headers=account.headers
    )
    assert removed.status_code == 204
    assert await starts("2026-03-04") == ["09:00", "10:00", "11:00"]
    await client.delete(f"/providers/me/time-off/{leave.json()['id']}", headers=account.headers)
    assert await starts("2026-03-05") == ["09:00", "10:00", "11:00"]
    gone = await client.delete(
        f"/providers/me/time-off/{leave.json()['id']}", headers=account.headers
    )
    assert gone.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {
            "date": "2026-03-02",
            "kind": "unavailable",
            "ranges": [{"start_time": "09:00:00", "end_time": "10:00:00"}],
        },
        {"date": "2026-03-02", "kind": "replace", "ranges": []},
        {
            "date": "2026-03-02",
            "kind": "add",
            "ranges": [{"start_time": "10:00:00", "end_time": "09:00:00"}],
        },
        {"date": "2026-03-02", "kind": "sometimes"},
        {"date": "not-a-date", "kind": "unavailable"},
    ],
)
async def test_invalid_override_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    account, _ = await provider_with_profile(client)
    response = await client.post("/providers/me/date-overrides", headers=account.headers, json=body)
    assert response.status_code == 422


async def test_invalid_time_off_is_422(client: httpx.AsyncClient) -> None:
    account, _ = await provider_with_profile(client)
    response = await client.post(
        "/providers/me/time-off",
        headers=account.headers,
        json={"start_date": "2026-03-06", "end_date": "2026-03-05"},
    )
    assert response.status_code == 422


async def test_slots_carry_offsets_and_the_client_zone(
    client: httpx.AsyncClient, fixed_clock: datetime
) -> None:
    account, profile = await provider_with_profile(
        client, timezone="America/New_York", session_duration_minutes=60
    )
    await add_pattern(client, account, 6, "01:00:00", "04:00:00")  # Sunday
    response = await client.get(
        f"/providers/{profile['public_handle']}/slots",
        params={"date": "2026-03-08", "tz": "Europe/Madrid"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["timezone"] == "America/New_York"
    assert body["client_timezone"] == "Europe/Madrid"
    # Spring forward: 01:00-04:00 local is two hours of elapsed time.
    assert [(s["start_at"], s["end_at"]) for s in body["slots"]] == [
        ("2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"),
        ("2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"),
    ]
    assert body["slots"][0]["client_start_at"] == "2026-03-08T07:00:00+01:00"
    assert body["slots"][0]["date"] == "2026-03-08"


async def test_slot_window_rules(client: httpx.AsyncClient, fixed_clock: datetime) -> None:
    account, profile = await provider_with_profile(client, timezone="UTC", max_advance_days=365)
    await add_pattern(client, account, 0, "09:00:00", "11:00:00")  # Mondays
    handle = profile["public_handle"]
    window = await client.get(
        f"/providers/{handle}/slots", params={"from": "2026-03-02", "to": "2026-05-02"}
    )
    assert window.status_code == 200  # 62 days exactly
    assert len(window.json()["slots"]) == 9 * 2
    too_long = await client.get(
        f"/providers/{handle}/slots", params={"from": "2026-03-02", "to": "2026-05-03"}
    )
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "window_too_long"
    for params in (
        {},
        {"from": "2026-03-09", "to": "2026-03-02"},
        {"date": "2026-03-02", "from": "2026-03-02"},
    ):
        bad = await client.get(f"/providers/{handle}/slots", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["code"] == "invalid_window"
    bad_zone = await client.get(
        f"/providers/{handle}/slots", params={"date": "2026-03-02", "tz": "Mars/Base"}
    )
    assert bad_zone.status_code == 422
    bad_date = await client.get(f"/providers/{handle}/slots", params={"date": "2026-02-30"})
    assert bad_date.status_code == 422


async def test_slots_respect_notice_horizon_and_past(
    client: httpx.AsyncClient, fixed_clock: datetime
) -> None:
    account, profile = await provider_with_profile(
        client, timezone="UTC", min_notice_minutes=24 * 60, max_advance_days=7
    )
    for day in range(7):
        await add_pattern(client, account, day, "09:00:00", "17:00:00")
    handle = profile["public_handle"]
    response = await client.get(
        f"/providers/{handle}/slots", params={"from": "2026-02-28", "to": "2026-03-10"}
    )
    starts = [s["start_at"] for s in response.json()["slots"]]
    # Now is 2026-03-01 12:00Z: 24 hours' notice, and at most 7 days ahead.
    assert starts[0] == "2026-03-02T12:00:00Z"
    assert starts[-1] == "2026-03-08T12:00:00Z"


async def test_services_and_slot_duration(client: httpx.AsyncClient, fixed_clock: datetime) -> None:
    account, profile = await provider_with_profile(
        client, timezone="UTC", session_duration_minutes=60
    )
    await add_pattern(client, account, 0, "09:00:00", "11:00:00")
    intro = await client.post(
        "/providers/me/services",
        headers=account.headers,
        json={"name": "Intro", "duration_minutes": 30},
    )
    handle = profile["public_handle"]
    default = await client.get(f"/providers/{handle}/slots", params={"date": "2026-03-02"})
    assert len(default.json()["slots"]) == 2
    assert default.json()["service_id"] is None
    short = await client.get(
        f"/providers/{handle}/slots", params={"date": "2026-03-02", "service": intro.json()["id"]}
    )
    assert short.json()["duration_minutes"] == 30
    assert len(short.json()["slots"]) == 4
    other, _ = await provider_with_profile(client)
    foreign = await client.get(
        f"/providers/{other.id}/slots", params={"date": "2026-03-02", "service": intro.json()["id"]}
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "service_not_found"
    custom = await client.get(
        "/availability/slots",
        params={"staff_id": account.id, "date": "2026-03-02", "slot_duration": 120},
    )
    assert custom.status_code == 200
    assert len(custom.json()["slots"]) == 1


async def test_seed_slot_forms(client: httpx.AsyncClient, fixed_clock: datetime) -> None:
    account, profile = await provider_with_profile(client, timezone="UTC")
    await add_pattern(client, account, 0, "09:00:00", "11:00:00")
    expected = ["2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"]
    for path, params in (
        ("/tutors/availability", {"tutor_id": profile["id"], "date": "2026-03-02"}),
        ("/doctors/availability", {"doctor_id": profile["id"], "date": "2026-03-02"}),
        ("/providers/availability", {"provider_id": profile["id"], "date": "2026-03-02"}),
        ("/availability/slots", {"staff_id": account.id, "date": "2026-03-02"}),
        ("/appointments/availability", {"provider_id": profile["id"], "date": "2026-03-02"}),
        (f"/doctors/{profile['id']}/slots", {"date": "2026-03-02"}),
    ):
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        got = [s["start_at"].replace("+00:00", "Z") for s in response.json()["slots"]]
        assert got == expected, path
    missing = await client.get("/tutors/availability", params={"date": "2026-03-02"})
    assert missing.status_code == 422
    unknown = await client.get(
        "/appointments/availability",
        params={"provider_id": "00000000-0000-0000-0000-000000000000", "date": "2026-03-02"},
    )
    assert unknown.status_code == 404


async def test_hidden_and_closed_providers_offer_no_slots(
    client: httpx.AsyncClient, settings: Settings, fixed_clock: datetime
) -> None:
    admin = await signed_in_admin(client, settings)
    account, profile = await provider_with_profile(client, timezone="UTC")
    await add_pattern(client, account, 0, "09:00:00", "11:00:00")
    url = f"/providers/{profile['id']}/slots"
    assert len((await client.get(url, params={"date": "2026-03-02"})).json()["slots"]) == 2
    await client.put("/providers/me", headers=account.headers, json={"accepting_bookings": False})
    assert (await client.get(url, params={"date": "2026-03-02"})).json()["slots"] == []
    await client.patch(f"/users/{account.id}", headers=admin.headers, json={"is_blocked": True})
    assert (await client.get(url, params={"date": "2026-03-02"})).status_code == 404
    assert (await client.get("/providers")).json()["total"] == 0
    # An admin still manages a suspended provider's profile.
    managed = await client.put(
        f"/providers/{profile['id']}", headers=admin.headers, json={"bio": "on leave"}
    )
    assert managed.status_code == 200


async def test_override_notes_and_time_off_reasons_are_private(
    client: httpx.AsyncClient,
) -> None:
    account, profile = await provider_with_profile(client)
    await client.post(
        "/providers/me/date-overrides",
        headers=account.headers,
        json={"date": "2026-03-04", "kind": "unavailable", "note": "Dentist"},
    )
    await client.post(
        "/providers/me/time-off",
        headers=account.headers,
        json={"start_date": "2026-03-05", "end_date": "2026-03-06", "reason": "Surgery"},
    )
    handle = profile["public_handle"]
    public_override = (await client.get(f"/providers/{handle}/date-overrides")).json()
    public_leave = (await client.get(f"/providers/{handle}/time-off")).json()
    assert public_override[0]["note"] is None
    assert public_leave[0]["reason"] is None
    own_override = await client.get("/providers/me/date-overrides", headers=account.headers)
    own_leave = await client.get("/providers/me/time-off", headers=account.headers)
    assert own_override.json()[0]["note"] == "Dentist"
    assert own_leave.json()[0]["reason"] == "Surgery"


async def test_seed_paths_without_trailing_slash_and_clear_errors(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account, profile = await provider_with_profile(client)
    created = await client.post(
        "/availability",
        headers=account.headers,
        json={"day_of_week": 1, "start_time": "09:00:00", "end_time": "10:00:00"},
    )
    assert created.status_code == 201
    listed = await client.get("/availability", params={"staff_id": profile["id"]})
    assert listed.status_code == 200
    assert listed.json()["total"] == 1
    no_id = await client.get("/tutors/availability", params={"date": "2026-03-02"})
    assert no_id.json()["code"] == "provider_id_required"
    admin = await signed_in_admin(client, settings)
    forgot = await client.post(
        "/availability/",
        headers=admin.headers,
        json={"day_of_week": 3, "start_time": "08:00:00", "end_time": "12:00:00"},
    )
    assert forgot.status_code == 422
    assert "staff_id" in forgot.json()["message"]

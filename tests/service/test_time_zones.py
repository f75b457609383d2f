"""Only IANA zone names are accepted, wherever a zone enters: never a name of the host's files."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from slotwise.timezones import known_zones
from tests.conftest import make_settings
from tests.factories import bookable_provider, signed_in, unique_email

NOT_ZONES = ["localtime", "Factory", "posixrules", "posix/America/New_York", "right/UTC"]
IANA_NAMES = ["America/Guayaquil", "US/Eastern", "UTC", "Etc/GMT+5", "EST5EDT", "GMT"]


def test_the_zone_list_is_tzdata_s_not_the_host_s() -> None:
    zones = known_zones()
    assert set(IANA_NAMES) <= zones
    assert not set(NOT_ZONES) & zones
    assert not [name for name in zones if name.startswith(("posix/", "right/"))]
    assert len(zones) > 500


def _refused_zone(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    details = response.json()["details"]
    assert list(loc) in [error["loc"] for error in details]
    refusal = next(error for error in details if error["loc"] == list(loc))
    assert refusal["type"] == "unknown_time_zone", refusal
    # The message names the zone refused (a template left unfilled once read "{name!r}").
    assert "{" not in refusal["msg"], refusal
    assert refusal["msg"].startswith("Unknown IANA time zone '"), refusal


async def test_host_file_names_are_refused_everywhere_a_zone_enters(
    client: httpx.AsyncClient,
) -> None:
    account = await signed_in(client)
    provider, profile = await bookable_provider(client)
    for name in NOT_ZONES:
        registered = await client.post(
            "/auth/register",
            json={
                "email": unique_email(),
                "password": "x" * 20,
                "full_name": "Zone",
                "timezone": name,
            },
        )
        _refused_zone(registered, "body", "timezone")
        own = await client.patch("/users/me", headers=account.headers, json={"timezone": name})
        _refused_zone(own, "body", "timezone")
        profile_zone = await client.patch(
            "/providers/me", headers=provider.headers, json={"timezone": name}
        )
        _refused_zone(profile_zone, "body", "timezone")
        slots = await client.get(
            f"/providers/{profile['public_handle']}/slots",
            params={"date": "2099-01-05", "tz": name},
        )
        _refused_zone(slots, "query", "tz")


async def test_iana_links_and_etc_zones_are_accepted(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    for name in IANA_NAMES:
        response = await client.patch("/users/me", headers=account.headers, json={"timezone": name})
        assert response.status_code == 200, response.text
        assert response.json()["timezone"] == name


@pytest.mark.parametrize("name", NOT_ZONES)
def test_the_default_zone_setting_refuses_host_file_names(name: str) -> None:
    with pytest.raises(ValidationError, match="Unknown IANA time zone"):
        make_settings("sqlite+aiosqlite://", default_timezone=name)
    assert make_settings("sqlite+aiosqlite://", default_timezone="EST5EDT").default_timezone

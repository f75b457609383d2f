"""IANA time zone names as a validated pydantic type."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, Field

from slotwise.text import Text


@cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_zone(name: str) -> str:
    if name not in known_zones():
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


TimeZoneName = Annotated[
    Text,
    Field(min_length=1, max_length=64, examples=["America/Guayaquil"]),
    AfterValidator(check_zone),
]

"""IANA time zone names as a validated pydantic type.

The names accepted are those of the IANA database as the `tzdata` package lists them (its
`zones` file: canonical zones and their backward-compatible links, such as UTC, Etc/GMT+5,
EST5EDT or US/Eastern), whatever the host's zoneinfo directory holds besides. Not zones,
and refused: `Factory` (IANA's placeholder), and the host's files `localtime`,
`posixrules`, `posix/...` and `right/...`, which would make slots follow the host.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from slotwise.text import Text

NOT_ZONES = frozenset({"Factory"})


@cache
def known_zones() -> frozenset[str]:
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split()) - NOT_ZONES


def check_zone(name: str) -> str:
    if name not in known_zones():
        raise PydanticCustomError(
            "unknown_time_zone", "Unknown IANA time zone '{name}'.", {"name": name}
        )
    return name


TimeZoneName = Annotated[
    Text,
    Field(min_length=1, max_length=64, examples=["America/Guayaquil"]),
    AfterValidator(check_zone),
]

"""Dates and datetimes as the API takes them: in years 2 to 9998, the representable range.

Python's calendar ends at 0001-01-01 and 9999-12-31, and the service computes past the
value it is given: a date's end is the next midnight, a wall time moves by its zone's offset
(under a day), a slot listing reads busy time six hours either side, and an appointment adds
its duration (up to 12 hours) and buffers (up to 4 hours each). All of that stays within
three days of the value; notice and horizon are added to the clock's `now`, never to input.
A whole year of margin on either side keeps every such computation representable and makes
the rule easy to state. A value outside it is a 422 naming its field (`date_out_of_range`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, WithJsonSchema
from pydantic_core import PydanticCustomError

FIRST_DATE = date(2, 1, 1)
LAST_DATE = date(9998, 12, 31)
RANGE_TEXT = f"from {FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}"


def _refuse() -> PydanticCustomError:
    return PydanticCustomError(
        "date_out_of_range",
        "Dates are taken {range} (the calendar's ends are kept clear).",
        {"range": RANGE_TEXT},
    )


def check_date(value: date) -> date:
    if not FIRST_DATE <= value <= LAST_DATE:
        raise _refuse()
    return value


def check_datetime(value: datetime) -> datetime:
    """The date as written (before its offset, if any, is applied) must be in the range."""
    check_date(value.date())
    return value


# The OpenAPI document shows the range (JSON Schema has no keyword for a date's bounds): a
# test checks that every date and datetime a route takes carries it.
RANGE_KEY = "x-date-range"
_RANGE = [FIRST_DATE.isoformat(), LAST_DATE.isoformat()]


def _schema(format_: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "format": format_, RANGE_KEY: _RANGE})


ApiDate = Annotated[date, AfterValidator(check_date), _schema("date")]
ApiDatetime = Annotated[datetime, AfterValidator(check_datetime), _schema("date-time")]
ApiAwareDatetime = Annotated[AwareDatetime, AfterValidator(check_datetime), _schema("date-time")]

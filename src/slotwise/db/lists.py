"""A list of values bound as one statement parameter: ``one_of`` (the column is one of the
list's values) and ``padded`` (the list's length rounded up, so that few statement texts
exist)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute

T = TypeVar("T")


def padded(values: list[T]) -> list[T]:
    """``values``, the last repeated up to a power of two (up to 8) or a multiple of 8. A
    statement whose text depends on a count (an expanding IN, a set of columns per item) is
    then built, cached and prepared by the driver for a dozen counts (1, 2, 4, 8, 16, 24 ...
    64) rather than each, and the database does at most 7 lookups more than asked."""
    count = len(values)
    if count == 0:
        return values
    size = 1 << (count - 1).bit_length() if count <= 8 else -(-count // 8) * 8
    return values + [values[-1]] * (size - count)


def one_of(column: QueryableAttribute[Any], name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """``column`` is one of the values of the list bound as ``name``. On PostgreSQL
    ``= ANY(array)``: one statement text however long the list. Elsewhere an expanding IN,
    whose text SQLAlchemy rewrites for each execution (``padded`` keeps the lengths few)."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))

"""Column types whose behaviour differs between SQLite and PostgreSQL: ``UTCDateTime``, the
type of every instant (``*_at``) column."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, always read back timezone-aware.

    SQLite has no time zone type, so values are normalised to UTC before they are written;
    comparisons in SQL then order correctly on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _in_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, an instant straight to the text SQLite stores, in SQLAlchemy's own
        storage format for it (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): one C call where the
        general path makes three Python ones (this type's conversion, the dialect's, and
        the formatting of seven fields), and a booking's write binds some thirty."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                value = _in_utc(value)
            return value.isoformat(" ", "microseconds")[:26]  # without its "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, the stored text straight to an aware instant in one C call: a month's
        busy time is thousands of values, and parse-then-replace costs five times as much.
        asyncpg reads a ``timestamptz`` as an instant in UTC already, whatever the session's
        time zone: nothing to do per value."""
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            return None
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fallback = super().result_processor(dialect, coltype)

        def process(value: object) -> datetime | None:
            if isinstance(value, str):
                try:
                    return datetime.fromisoformat(value + "+00:00")  # stored as naive UTC
                except ValueError:
                    pass  # written with an offset by another tool: the general path
            result: datetime | None = fallback(value) if fallback else value  # type: ignore[assignment]
            return result

        return process


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given for an instant column")
    return value.astimezone(UTC)

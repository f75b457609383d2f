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
        if value.tzinfo is None:
            raise ValueError("naive datetime given for an instant column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

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

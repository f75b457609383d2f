"""UTCDateTime writes an instant to SQLite's text in UTC, and reads that text straight into
an aware UTC instant."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from slotwise.db import UTCDateTime


def test_sqlite_text_becomes_an_aware_utc_instant() -> None:
    process = UTCDateTime().result_processor(sqlite.dialect(), None)
    read = process("2026-11-28 14:00:00.000000")
    assert read == datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert read.tzinfo is UTC
    assert process(None) is None


def test_what_is_written_to_sqlite_reads_back_as_the_same_instant() -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime()
    moment = datetime(2027, 3, 14, 1, 59, 26, 535897, tzinfo=UTC)
    text = column.bind_processor(dialect)(moment)  # what SQLite stores
    assert text == "2027-03-14 01:59:26.535897"
    assert column.result_processor(dialect, None)(text) == moment


ZONES = [UTC, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([*ZONES, timezone(timedelta(hours=-9, minutes=-30))]),
    )
)
def test_sqlite_text_is_sqlalchemys_own_format_of_the_instant_in_utc(moment: datetime) -> None:
    """The same text as the general path (the instant in UTC, then SQLAlchemy's SQLite
    DATETIME format): every row written before reads and compares as it did."""
    dialect = sqlite.dialect()
    general = dialect.type_descriptor(DateTime(timezone=True)).bind_processor(dialect)
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    assert UTCDateTime().bind_processor(dialect)(moment) == general(utc)


def test_a_naive_instant_is_refused_on_both_databases() -> None:
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        process = UTCDateTime().bind_processor(dialect)
        assert process is not None
        with pytest.raises(ValueError, match="naive"):
            process(datetime(2027, 3, 14, 1, 59))
        assert process(None) is None


def test_postgresql_without_asyncpg_keeps_the_general_path() -> None:
    process = UTCDateTime().result_processor(postgresql.dialect(), None)
    aware = datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert (process(aware) if process else aware) == aware

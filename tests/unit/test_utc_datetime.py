"""UTCDateTime reads SQLite's stored text straight into an aware UTC instant."""

from datetime import UTC, datetime

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
    stored = column.process_bind_param(moment, dialect)
    assert stored is not None
    assert stored.tzinfo is None
    to_text = dialect.type_descriptor(column.impl_instance).bind_processor(dialect)
    text = to_text(stored)  # what SQLite stores
    assert isinstance(text, str)
    assert column.result_processor(dialect, None)(text) == moment


def test_postgresql_without_asyncpg_keeps_the_general_path() -> None:
    process = UTCDateTime().result_processor(postgresql.dialect(), None)
    aware = datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert (process(aware) if process else aware) == aware

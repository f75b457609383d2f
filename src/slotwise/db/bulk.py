"""Writing many rows at once: ``insert_rows`` (rows of several tables in one statement on
PostgreSQL), ``unnested`` (rows sent as one array per column, read back with ``unnest``)
and ``insert_ignoring_duplicates``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Column, Integer, String, Table, TextClause, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from slotwise.db.base import Base
from slotwise.db.types import UTCDateTime


async def insert_rows(
    session: AsyncSession, tables: list[tuple[Table, list[dict[str, Any]]]]
) -> None:
    """Rows into several tables, in the order given (a row's parents before it), in the
    session's transaction. On PostgreSQL one statement: the tables' INSERTs as
    data-modifying CTEs, each row set sent as one array per column and unnested (one round
    trip, one execution, rather than a statement per table and an execution per row);
    foreign keys are checked at the statement's end. Elsewhere one INSERT per table."""
    tables = [(table, rows) for table, rows in tables if rows]
    if not tables:
        return
    connection = await session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        for table, rows in tables:
            await connection.execute(table.insert(), rows)
        return
    shape = tuple((table.name, tuple(rows[0])) for table, rows in tables)
    statement, parts = _unnested_insert(shape)
    values: dict[str, list[Any]] = {}
    for part, (_table, rows) in zip(parts, tables, strict=True):
        values.update(part.values(dialect, rows))
    await connection.execute(statement, values)


@dataclass(frozen=True, slots=True)
class Unnested:
    """Rows of one table sent to PostgreSQL as one array parameter per column, to be read
    back as rows with ``unnest``: one statement text and one execution however many rows."""

    columns: str  # the quoted column names, comma-separated, in the arrays' order
    arrays: str  # the array parameters, comma-separated: the arguments of unnest(...)
    parameters: tuple[tuple[str, Column[Any]], ...]  # (name, column), in that order

    def values(self, dialect: Dialect, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """The parameters' values for these rows (each row has every key of the shape)."""
        values: dict[str, list[Any]] = {}
        for name, column in self.parameters:
            key = column.key
            process = column.type.bind_processor(dialect)
            values[name] = (
                [process(row[key]) for row in rows] if process else [row[key] for row in rows]
            )
        return values


@lru_cache(maxsize=64)
def unnested(table_name: str, keys: tuple[str, ...], prefix: str) -> Unnested:
    """The arrays for rows of this table with these keys, their parameters named
    ``{prefix}_{key}``. Names come from the models' metadata, never from input."""
    table = Base.metadata.tables[table_name]
    names, arrays, parameters = [], [], []
    for key in keys:
        column = table.columns[key]
        name = f"{prefix}_{key}"
        names.append(f'"{column.name}"')
        arrays.append(f"CAST(:{name} AS {_array_type(column)}[])")
        parameters.append((name, column))
    return Unnested(", ".join(names), ", ".join(arrays), tuple(parameters))


@lru_cache(maxsize=64)
def _unnested_insert(
    shape: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[TextClause, list[Unnested]]:
    """The PostgreSQL statement for rows of these tables and keys, built once per shape, and
    each table's arrays, in the order of ``shape``."""
    parts = [unnested(name, keys, f"t{number}") for number, (name, keys) in enumerate(shape)]
    # Table and column names from the models' metadata, never from input.
    inserts = [
        f'INSERT INTO "{name}" ({part.columns}) SELECT * FROM unnest({part.arrays})'  # noqa: S608
        for (name, _keys), part in zip(shape, parts, strict=True)
    ]
    *first, last = inserts
    with_clause = ", ".join(f"t{number} AS ({part})" for number, part in enumerate(first))
    return text(f"WITH {with_clause} {last}" if first else last), parts


def _array_type(column: Column[Any]) -> str:
    """The PostgreSQL element type an array parameter of this column is sent as (lengths
    left to the column itself, so that a value too long is refused, not cut)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, Uuid):
        return "uuid"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, String):  # Text and (non-native) Enum included
        return "text"
    raise TypeError(f"no array type for {column}")


def insert_ignoring_duplicates(session: AsyncSession, model: type[Base]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the session's own dialect."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        return sqlite_insert(model).on_conflict_do_nothing()
    return postgresql_insert(model).on_conflict_do_nothing()

"""Writing many rows at once: ``insert_rows`` (rows of several tables in one statement on
PostgreSQL), ``unnested`` (rows sent as one array per column, read back with ``unnest``)
and ``insert_ignoring_duplicates``. Statements are SQLAlchemy constructs, built once per
shape of rows; table and column names come from the models' metadata only."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Insert,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Cast, ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine, Uuid

from slotwise.db import sqlite
from slotwise.db.base import Base
from slotwise.db.types import UTCDateTime


async def insert_rows(
    session: AsyncSession,
    tables: list[tuple[Table, list[dict[str, Any]]]],
    *,
    deferred: bool = False,
) -> None:
    """Rows into several tables, in the order given (a row's parents before it), in the
    session's transaction. On PostgreSQL one statement: the tables' INSERTs as
    data-modifying CTEs, each row set sent as one array per column and unnested (one round
    trip, one execution, rather than a statement per table and an execution per row);
    foreign keys are checked at the statement's end. On SQLite one INSERT per table;
    ``deferred``: sent with the session's next statement or its commit
    (``sqlite.deferred``), for a caller that reads nothing of them before it, and to whom
    their errors may come from that statement."""
    tables = [(table, rows) for table, rows in tables if rows]
    if not tables:
        return
    for table, rows in tables:
        _given_defaults(table.name, tuple(rows[0]))
    connection = await session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        for table, rows in tables:
            text, columns = _positional_insert(dialect, table.name, tuple(rows[0]))
            converted = [tuple(_converted(columns, row)) for row in rows]
            async with sqlite.deferred(connection, deferred):
                await connection.exec_driver_sql(text, converted)
        return
    shape = tuple((table.name, tuple(rows[0])) for table, rows in tables)
    statement, parts = _unnested_insert(shape)
    values: dict[str, list[Any]] = {}
    for part, (_table, rows) in zip(parts, tables, strict=True):
        values.update(part.values(dialect, rows))
    await connection.execute(statement, values)


@lru_cache(maxsize=64)
def _given_defaults(table_name: str, keys: tuple[str, ...]) -> None:
    """Rows are inserted with the columns they give, and no Python-side default is added
    (as a text INSERT would): a column that has one must be given."""
    table = Base.metadata.tables[table_name]
    missing = [c.key for c in table.columns if c.default is not None and c.key not in keys]
    if missing:
        raise ValueError(f"rows of {table_name} without {', '.join(missing)}")


# A column as a positional INSERT binds it: its key, and its type's conversion to the
# database's form (None: the value as it is).
_Bound = tuple[str, Any]


@lru_cache(maxsize=64)
def _positional_insert(
    dialect: Dialect, table_name: str, keys: tuple[str, ...]
) -> tuple[str, tuple[_Bound, ...]]:
    """SQLite: the INSERT of rows of this table with these keys, compiled once, and its
    parameters in their order, each with its column type's conversion. A batch's rows go to
    the driver as tuples already converted, as PostgreSQL's arrays do (``Unnested.values``):
    SQLAlchemy's execution of a Core INSERT with many rows builds and converts each row's
    parameters through its general path, a large share of a booking's write. Only the
    columns given, as PostgreSQL's unnested INSERT: no Python-side defaults are added."""
    table = Base.metadata.tables[table_name]
    statement = insert(table).values({key: bindparam(key) for key in keys})
    compiled = statement.compile(dialect=dialect)
    order = compiled.positiontup
    assert order is not None, "a positional dialect"
    assert sorted(order) == sorted(keys)
    columns = tuple(
        (key, table.columns[key].type.dialect_impl(dialect).bind_processor(dialect))
        for key in order
    )
    return compiled.string, columns


def _converted(columns: tuple[_Bound, ...], row: dict[str, Any]) -> list[Any]:
    return [row[key] if process is None else process(row[key]) for key, process in columns]


@dataclass(frozen=True, slots=True)
class Unnested:
    """Rows of one table sent to PostgreSQL as one array parameter per column, to be read
    back as rows with ``unnest``: one statement text and one execution however many rows.

    ``rows`` is that read as a FROM clause, ``insert()`` the INSERT of all of them;
    ``values()`` gives the parameters' values (already in the columns' database form, so
    the parameters are untyped and nothing converts them twice)."""

    table: Table
    parameters: tuple[tuple[str, Column[Any]], ...]  # (name, column), in the arrays' order
    rows: TableValuedAlias  # unnest(CAST(:name AS type[]), ...) AS alias(column names)

    def insert(self, where: ColumnElement[bool] | None = None) -> Insert:
        """INSERT INTO the table (these columns) SELECT the unnested rows (those ``where``
        holds, if given)."""
        columns = [column for _name, column in self.parameters]
        rows = select(*self.rows.columns)
        if where is not None:
            rows = rows.where(where)
        # Only the columns given, as a text INSERT would: no Python-side defaults added.
        return insert(self.table).from_select(columns, rows, include_defaults=False)

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
    ``{prefix}_{key}`` and the unnested rows aliased ``prefix``. Names come from the
    models' metadata, never from input."""
    table = Base.metadata.tables[table_name]
    columns = [table.columns[key] for key in keys]
    parameters = tuple((f"{prefix}_{column.key}", column) for column in columns)
    arrays = [array_of(name, column) for name, column in parameters]
    rows = (
        func.unnest(*arrays)
        .table_valued(*(column.name for column in columns))
        .render_derived(name=prefix)
    )
    return Unnested(table=table, parameters=parameters, rows=rows)


@lru_cache(maxsize=64)
def _unnested_insert(
    shape: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[Insert, list[Unnested]]:
    """The PostgreSQL statement for rows of these tables and keys, built once per shape
    (SQLAlchemy then finds its compiled form by the statement's cache key), and each
    table's arrays, in the order of ``shape``: the last table's INSERT, the others' before
    it as data-modifying CTEs ``inserted_0``, ``inserted_1`` ... in the order given."""
    parts = [unnested(name, keys, f"t{number}") for number, (name, keys) in enumerate(shape)]
    *first, last = parts
    statement = last.insert()
    for number, part in enumerate(first):
        statement = statement.add_cte(part.insert().cte(f"inserted_{number}"))
    return statement, parts


def array_of(name: str, column: Column[Any]) -> Cast[Any]:
    """The array parameter ``name`` of this column's values: untyped (``Unnested.values``
    converts them), cast to an array of the column's element type."""
    return cast(bindparam(name), postgresql.ARRAY(element_type(column)))


def element_type(column: Column[Any]) -> TypeEngine[Any]:
    """The PostgreSQL element type an array parameter of this column is sent as (lengths
    left to the column itself, so that a value too long is refused, not cut)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return Boolean()
    if isinstance(kind, UTCDateTime):
        return postgresql.TIMESTAMP(timezone=True)
    if isinstance(kind, Uuid):
        return postgresql.UUID()
    if isinstance(kind, Integer):
        return Integer()
    if isinstance(kind, JSON):
        return postgresql.JSON()
    if isinstance(kind, String):  # Text and (non-native) Enum included
        return Text()
    raise TypeError(f"no array type for {column}")


def insert_ignoring_duplicates(session: AsyncSession, model: type[Base]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the session's own dialect."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        return sqlite_insert(model).on_conflict_do_nothing()
    return postgresql_insert(model).on_conflict_do_nothing()

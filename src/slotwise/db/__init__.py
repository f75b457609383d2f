"""The database layer; every SQLite/PostgreSQL difference lives here.

- ``engine``: ``make_engine``, SQLite's pragmas and BEGIN IMMEDIATE, PostgreSQL's pool;
  ``lone_read``, a connection's statements outside any transaction.
- ``sessions``: ``Database`` (sessions, transactions, SQLite's single writer),
  ``SessionDep``, the request's session, and ``transaction_memo``, what a transaction keeps
  until it ends.
- ``types``: column types, ``UTCDateTime`` for instants.
- ``base``: the models' declarative ``Base``, ``TimestampMixin``, ``table_of``, ``unsaved``.
- ``bulk``: many rows written at once (``insert_rows``, ``unnested``,
  ``insert_ignoring_duplicates``).
- ``lists``: a list bound as one parameter (``one_of``, ``padded``).
- ``sqlite``: SQLite's one-trip driver adapter; ``deferred``, a write sent with the next
  statement's trip.

Other modules import these names from ``slotwise.db`` itself.
"""

from slotwise.db.base import NAMING_CONVENTION, Base, TimestampMixin, table_of, unsaved, utcnow
from slotwise.db.bulk import Unnested, insert_ignoring_duplicates, insert_rows, unnested
from slotwise.db.engine import lone_read, make_engine
from slotwise.db.lists import one_of, padded
from slotwise.db.sessions import (
    READ_METHODS,
    Database,
    SessionDep,
    get_session,
    transaction_memo,
)
from slotwise.db.sqlite import deferred
from slotwise.db.types import UTCDateTime

__all__ = [
    "NAMING_CONVENTION",
    "READ_METHODS",
    "Base",
    "Database",
    "SessionDep",
    "TimestampMixin",
    "UTCDateTime",
    "Unnested",
    "deferred",
    "get_session",
    "insert_ignoring_duplicates",
    "insert_rows",
    "lone_read",
    "make_engine",
    "one_of",
    "padded",
    "table_of",
    "transaction_memo",
    "unnested",
    "unsaved",
    "utcnow",
]

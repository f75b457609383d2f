"""The declarative ``Base`` every model derives from, the ``TimestampMixin`` of rows that
keep their creation and last change, and two helpers on models: ``table_of`` (a model's
Core table) and ``unsaved`` (an instance built without the ORM, for a row written by a
Core INSERT)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, class_mapper, mapped_column
from sqlalchemy.types import Uuid

from slotwise.db.types import UTCDateTime

M = TypeVar("M", bound="Base")

# Constraint and index names the migrations can rely on (and drop by name on both databases).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements (typed: ``__table__`` is a FromClause to mypy)."""
    return cast(Table, model.__table__)


def unsaved(model: type[M], **values: Any) -> M:
    """A model instance to read from, for a row written with a Core INSERT: its attributes
    set without the ORM's change tracking, at a tenth of the constructor's cost. Never to be
    added to a session (it would not know what to write); every attribute read must be
    given, relationships as plain lists."""
    instance: M = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values)
    return instance

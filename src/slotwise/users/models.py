from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from slotwise.db import Base, TimestampMixin


class Role(StrEnum):
    ADMIN = "admin"
    PROVIDER = "provider"
    CLIENT = "client"


def _role_type() -> Enum:
    return Enum(
        Role,
        name="user_role",
        native_enum=False,
        length=20,
        values_callable=lambda roles: [r.value for r in roles],
    )


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_role_type())
    hashed_password: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Suspended by an admin: every token of the user stops working at once.
    is_blocked: Mapped[bool] = mapped_column(default=False)
    # Tokens issued before this instant are refused (set by a password reset).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(default=None)


class RoleChange(Base):
    """A change of a user's role: whose, by whom (the admin; None once that account is
    gone), when, from and to."""

    __tablename__ = "role_changes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime]
    from_role: Mapped[Role] = mapped_column(_role_type())
    to_role: Mapped[Role] = mapped_column(_role_type())

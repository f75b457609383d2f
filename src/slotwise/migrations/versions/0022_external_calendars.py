"""external calendars: ``external_calendars``, a provider's connected calendars (an iCalendar
URL or a CalDAV calendar, its credentials encrypted), each synced by the worker under a
lease; ``caldav_pushed``, the bookings written into a provider's CalDAV calendar

Revision ID: 0022
Revises: 0021
Create Date: 2027-02-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "external_calendars"
PUSHED = "caldav_pushed"


def upgrade() -> None:
    instant = slotwise.db.UTCDateTime(timezone=True)
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "ics_url", "caldav", name="external_calendar_kind", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("tentative_busy", sa.Boolean(), nullable=False),
        sa.Column("write_bookings", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active", "paused", name="external_calendar_status", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("due_at", instant, nullable=False),
        sa.Column("locked_until", instant, nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column(
            "sync_status",
            sa.Enum(
                "pending", "ok", "error", name="external_sync_status", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("last_attempt_at", instant, nullable=True),
        sa.Column("last_success_at", instant, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failing_since", instant, nullable=True),
        sa.Column("paused_at", instant, nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("synced_window", sa.String(length=60), nullable=True),
        sa.Column("pushed_at", instant, nullable=True),
        sa.Column("push_error", sa.Text(), nullable=True),
        sa.Column("created_at", instant, nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_external_calendars_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_calendars")),
    )
    op.create_index(op.f("ix_external_calendars_provider_id"), TABLE, ["provider_id"], unique=False)
    op.create_index(
        "ix_external_calendars_status_due_at", TABLE, ["status", "due_at"], unique=False
    )
    op.create_table(
        PUSHED,
        sa.Column("calendar_id", sa.Uuid(), nullable=False),
        sa.Column("uid", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("end_at", instant, nullable=False),
        sa.Column("pushed_at", instant, nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            [f"{TABLE}.id"],
            name=op.f("fk_caldav_pushed_calendar_id_external_calendars"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("calendar_id", "uid", name=op.f("pk_caldav_pushed")),
    )


def downgrade() -> None:
    op.drop_table(PUSHED)
    op.drop_index("ix_external_calendars_status_due_at", table_name=TABLE)
    op.drop_index(op.f("ix_external_calendars_provider_id"), table_name=TABLE)
    op.drop_table(TABLE)

"""recurring series: ``appointment_series`` (the rule and whose it is) and, on appointments,
the series an occurrence belongs to and the instant its rule gives it (``recurrence_at``,
which a reschedule leaves: the calendar's RECURRENCE-ID)

Plain ALTERs on both databases: batch mode would rebuild SQLite's appointments table and lose
the triggers of migrations 0008, 0009, 0012 and 0015. ``appointments.series_id`` has no foreign
key: SQLite's ADD COLUMN could only declare it inline, which SQLAlchemy does not reflect (the
models would never match the schema). Nothing breaks without it: a series row is deleted only
with its provider, whose appointments go with it (CASCADE).

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_appointments_series_recurrence"


def upgrade() -> None:
    op.create_table(
        "appointment_series",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.Uuid(), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("client_key", sa.String(length=320), nullable=False),
        sa.Column("guest_name", sa.String(length=200), nullable=True),
        sa.Column("guest_email", sa.String(length=320), nullable=True),
        sa.Column("guest_phone", sa.String(length=40), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("first_date", sa.Date(), nullable=False),
        sa.Column("wall_time", sa.Time(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("every_weeks", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("until_date", sa.Date(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("manage_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", slotwise.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", slotwise.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "every_weeks BETWEEN 1 AND 4",
            name=op.f("ck_appointment_series_every_weeks_in_range"),
        ),
        sa.CheckConstraint(
            "count BETWEEN 1 AND 52", name=op.f("ck_appointment_series_count_in_range")
        ),
        sa.CheckConstraint(
            "client_id IS NOT NULL OR guest_email IS NOT NULL",
            name=op.f("ck_appointment_series_has_client"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_appointment_series_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_appointment_series_service_id_services"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["users.id"],
            name=op.f("fk_appointment_series_client_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_series")),
        sa.UniqueConstraint(
            "manage_token_hash", name=op.f("uq_appointment_series_manage_token_hash")
        ),
    )
    op.create_index(
        op.f("ix_appointment_series_provider_id"), "appointment_series", ["provider_id"]
    )
    op.create_index(op.f("ix_appointment_series_client_id"), "appointment_series", ["client_id"])
    op.add_column("appointments", sa.Column("series_id", sa.Uuid(), nullable=True))
    op.add_column(
        "appointments",
        sa.Column("recurrence_at", slotwise.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(INDEX, "appointments", ["series_id", "recurrence_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="appointments")
    op.drop_column("appointments", "recurrence_at")
    op.drop_column("appointments", "series_id")
    op.drop_index(op.f("ix_appointment_series_client_id"), table_name="appointment_series")
    op.drop_index(op.f("ix_appointment_series_provider_id"), table_name="appointment_series")
    op.drop_table("appointment_series")

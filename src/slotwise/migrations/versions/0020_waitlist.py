"""waitlist: ``waitlist_entries``, clients (or guests) in line for a full slot or session

A new table only: an offer is a hold (migration 0018's ``held`` row) whose ``held_by`` names
its entry (``waitlist:<id>``), so ``appointments`` is not touched.

Revision ID: 0020
Revises: 0019
Create Date: 2027-01-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "waitlist_entries"
IN_LINE = "status IN ('waiting', 'offered')"


def upgrade() -> None:
    instant = slotwise.db.UTCDateTime(timezone=True)
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.Uuid(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start_at", instant, nullable=False),
        sa.Column("end_at", instant, nullable=False),
        sa.Column("blocked_start_at", instant, nullable=False),
        sa.Column("blocked_end_at", instant, nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("client_key", sa.String(length=320), nullable=False),
        sa.Column("guest_name", sa.String(length=200), nullable=True),
        sa.Column("guest_email", sa.String(length=320), nullable=True),
        sa.Column("guest_phone", sa.String(length=40), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=True),
        sa.Column("offer_until", instant, nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("manage_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", instant, nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.CheckConstraint(
            "mode IN ('book', 'offer')", name=op.f("ck_waitlist_entries_mode_known")
        ),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'booked', 'expired', 'skipped', 'left')",
            name=op.f("ck_waitlist_entries_status_known"),
        ),
        sa.CheckConstraint(
            "client_id IS NOT NULL OR guest_email IS NOT NULL",
            name=op.f("ck_waitlist_entries_has_client"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_waitlist_entries_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_waitlist_entries_service_id_services"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["users.id"],
            name=op.f("fk_waitlist_entries_client_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
        sa.UniqueConstraint("provider_id", "seq", name="uq_waitlist_entries_provider_seq"),
        sa.UniqueConstraint(
            "manage_token_hash", name=op.f("uq_waitlist_entries_manage_token_hash")
        ),
    )
    op.create_index(
        "uq_waitlist_entries_in_line",
        TABLE,
        ["provider_id", "start_at", "client_key"],
        unique=True,
        postgresql_where=sa.text(IN_LINE),
        sqlite_where=sa.text(IN_LINE),
    )
    op.create_index(
        "ix_waitlist_entries_provider_status",
        TABLE,
        ["provider_id", "status", "blocked_start_at"],
    )
    op.create_index("ix_waitlist_entries_offered", TABLE, ["status", "offer_until"])
    op.create_index(op.f("ix_waitlist_entries_client_id"), TABLE, ["client_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_waitlist_entries_client_id"), table_name=TABLE)
    op.drop_index("ix_waitlist_entries_offered", table_name=TABLE)
    op.drop_index("ix_waitlist_entries_provider_status", table_name=TABLE)
    op.drop_index("uq_waitlist_entries_in_line", table_name=TABLE)
    op.drop_table(TABLE)

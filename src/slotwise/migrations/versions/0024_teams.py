"""teams: ``teams``, ``team_members`` and ``team_services``; on services, the team service a
member's service stands for; on appointments, the team booking a row belongs to (a
collective booking is one row per member)

Plain ALTERs on both databases, without foreign keys on the new columns, as migration 0019
says why: batch mode would rebuild SQLite's tables and lose their triggers. A member's
service is deleted with its member's team service by the application (never left naming
one that is gone), and a team booking's rows share their id only as a group.

Revision ID: 0024
Revises: 0023
Create Date: 2027-02-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    instant = slotwise.db.UTCDateTime(timezone=True)
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_handle", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", instant, nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_teams_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("public_handle", name=op.f("uq_teams_public_handle")),
    )
    op.create_index(op.f("ix_teams_owner_id"), "teams", ["owner_id"])
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("created_at", instant, nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.CheckConstraint(
            "weight BETWEEN 1 AND 100", name=op.f("ck_team_members_weight_in_range")
        ),
        sa.CheckConstraint(
            "priority BETWEEN -100 AND 100", name=op.f("ck_team_members_priority_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_team_members_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_team_members_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "provider_id", name=op.f("pk_team_members")),
    )
    op.create_index(op.f("ix_team_members_provider_id"), "team_members", ["provider_id"])
    op.create_table(
        "team_services",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "mode",
            sa.Enum("round_robin", "collective", name="team_mode", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("slot_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", instant, nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.CheckConstraint(
            "duration_minutes BETWEEN 5 AND 720", name=op.f("ck_team_services_duration_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_team_services_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_services")),
    )
    op.create_index(op.f("ix_team_services_team_id"), "team_services", ["team_id"])
    op.add_column("services", sa.Column("team_service_id", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_services_team_service_id"), "services", ["team_service_id"])
    op.add_column("appointments", sa.Column("team_booking_id", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_appointments_team_booking_id"), "appointments", ["team_booking_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_appointments_team_booking_id"), table_name="appointments")
    op.drop_column("appointments", "team_booking_id")
    op.drop_index(op.f("ix_services_team_service_id"), table_name="services")
    op.drop_column("services", "team_service_id")
    op.drop_index(op.f("ix_team_services_team_id"), table_name="team_services")
    op.drop_table("team_services")
    op.drop_index(op.f("ix_team_members_provider_id"), table_name="team_members")
    op.drop_table("team_members")
    op.drop_index(op.f("ix_teams_owner_id"), table_name="teams")
    op.drop_table("teams")

"""holds: a slot held while a client fills in a form (status ``held``, ``hold_until``), with
the fingerprint of its token (``hold_token_hash``) and who holds it (``held_by``)

A hold is an appointment row, so the exclusion constraints (PostgreSQL) and the seat index
(both databases) count it: they are made again with ``'held'`` among the statuses that take
time. ``ck_appointments_has_client`` is left as it is (an anonymous hold's ``guest_email`` is
''), so SQLite's ``appointments`` is not rebuilt and keeps its triggers.

Downgrading deletes the holds (unused holds leave nothing behind).

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TAKING = "'pending', 'confirmed', 'pending_verification'"
NEW_TAKING = "'pending', 'confirmed', 'pending_verification', 'held'"
SEAT_INDEX = "uq_appointments_session_seat"
HELD_BY_INDEX = "ix_appointments_provider_held_by"


def _taking_time(statuses: str) -> None:
    """The seat index (both databases) and the exclusion constraints (PostgreSQL) over
    ``statuses``, made again as migrations 0011 and 0014 made them."""
    op.drop_index(SEAT_INDEX, table_name="appointments")
    op.create_index(
        SEAT_INDEX,
        "appointments",
        ["session_key", "seat_no"],
        unique=True,
        postgresql_where=sa.text(f"status IN ({statuses})"),
        sqlite_where=sa.text(f"status IN ({statuses})"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_client_no_overlap")
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_provider_no_overlap")
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_provider_no_overlap "
        "EXCLUDE USING gist (provider_id WITH =, "
        "tstzrange(blocked_start_at, blocked_end_at, '[)') WITH &&, session_key WITH <>) "
        f"WHERE (status IN ({statuses}))"
    )
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_client_no_overlap "
        "EXCLUDE USING gist (client_key WITH =, tstzrange(start_at, end_at, '[)') WITH &&) "
        f"WHERE (status IN ({statuses}))"
    )


def upgrade() -> None:
    # Plain ALTERs on both databases: batch mode would rebuild the SQLite table and lose
    # the triggers of migrations 0008 and 0015.
    op.add_column("appointments", sa.Column("hold_token_hash", sa.String(64), nullable=True))
    op.add_column("appointments", sa.Column("held_by", sa.String(340), nullable=True))
    op.create_index(
        "ix_appointments_hold_token_hash", "appointments", ["hold_token_hash"], unique=True
    )
    op.create_index(
        HELD_BY_INDEX,
        "appointments",
        ["provider_id", "held_by"],
        postgresql_where=sa.text("status = 'held'"),
        sqlite_where=sa.text("status = 'held'"),
    )
    _taking_time(NEW_TAKING)


def downgrade() -> None:
    op.execute("DELETE FROM appointments WHERE status = 'held'")
    _taking_time(OLD_TAKING)
    op.drop_index(HELD_BY_INDEX, table_name="appointments")
    op.drop_index("ix_appointments_hold_token_hash", table_name="appointments")
    op.drop_column("appointments", "held_by")
    op.drop_column("appointments", "hold_token_hash")

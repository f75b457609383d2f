"""guest clients: a guest is its own client, never the account with its email (guest
bookings' client key becomes ``guest:`` + email); providers may hold guests' bookings until
the guest verifies the email (``providers.verify_guest_email``, ``appointments.hold_until``
and ``verify_token_hash``, the status ``pending_verification``, which the PostgreSQL
exclusion constraints count as taking time)

Existing no-show counts stay with the email's key, as accounts' (which of them a guest
earned cannot be told any more). Downgrading cancels held bookings and gives guests their
bare email back as key (an overlap with the account's own bookings then fails the
downgrade on PostgreSQL, as it should: the old rule cannot hold both).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-05 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ACTIVE = "'pending', 'confirmed'"
NEW_ACTIVE = "'pending', 'confirmed', 'pending_verification'"


def _exclusion_constraints(statuses: str) -> None:
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_client_no_overlap")
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_provider_no_overlap")
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_provider_no_overlap "
        "EXCLUDE USING gist (provider_id WITH =, "
        "tstzrange(blocked_start_at, blocked_end_at, '[)') WITH &&) "
        f"WHERE (status IN ({statuses}))"
    )
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_client_no_overlap "
        "EXCLUDE USING gist (client_key WITH =, tstzrange(start_at, end_at, '[)') WITH &&) "
        f"WHERE (status IN ({statuses}))"
    )


def upgrade() -> None:
    # Plain ALTERs on both databases: batch mode would rebuild the SQLite tables and lose
    # the triggers of migrations 0008 and 0009.
    op.add_column(
        "providers",
        sa.Column("verify_guest_email", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "appointments",
        sa.Column("hold_until", slotwise.db.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("appointments", sa.Column("verify_token_hash", sa.String(64), nullable=True))
    op.create_index(
        "ix_appointments_verify_token_hash", "appointments", ["verify_token_hash"], unique=True
    )
    op.execute(
        "UPDATE appointments SET client_key = 'guest:' || client_key WHERE guest_email IS NOT NULL"
    )
    if op.get_bind().dialect.name == "postgresql":
        _exclusion_constraints(NEW_ACTIVE)


def downgrade() -> None:
    op.execute(
        "UPDATE appointments SET status = 'cancelled', hold_until = NULL"
        " WHERE status = 'pending_verification'"
    )
    op.execute(
        "UPDATE appointments SET client_key = substr(client_key, 7) WHERE client_key LIKE 'guest:%'"
    )
    # A guest's count goes back to its email, unless the account's is there.
    op.execute(
        "UPDATE client_standings SET email = substr(email, 7)"
        " WHERE email LIKE 'guest:%' AND substr(email, 7) NOT IN"
        " (SELECT email FROM client_standings)"
    )
    op.execute("DELETE FROM client_standings WHERE email LIKE 'guest:%'")
    if op.get_bind().dialect.name == "postgresql":
        _exclusion_constraints(OLD_ACTIVE)
    op.drop_index("ix_appointments_verify_token_hash", table_name="appointments")
    op.drop_column("appointments", "verify_token_hash")
    op.drop_column("appointments", "hold_until")
    op.drop_column("providers", "verify_guest_email")

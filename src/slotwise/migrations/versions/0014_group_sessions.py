"""group sessions: a service's ``capacity`` (1..500; 1 is one-to-one) and, on appointments,
the session a row is a seat of (``session_key``: a group session's shared key, a one-to-one
booking's own id), its ``seat_no`` and the ``capacity`` it was taken under

The provider's no-overlap constraint (PostgreSQL) now holds between rows of different
sessions only (``session_key WITH <>``): a session's seats share the provider's time, a
one-to-one row's key is its own id, so it conflicts with every overlap as before. A partial
unique index on (session_key, seat_no) and ``seat_no BETWEEN 1 AND capacity`` bound the
seats a session has on both databases (SQLite has no CHECK added by ALTER TABLE: there the
judgment under BEGIN IMMEDIATE counts the seats and the index backs it).

Downgrading cancels the seats of group sessions beyond each session's first (the old rule
cannot hold them) before the constraint is made again.

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAKING_TIME = "'pending', 'confirmed', 'pending_verification'"
SEAT_INDEX = "uq_appointments_session_seat"


def _provider_constraint(*, sessions: bool) -> None:
    op.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_provider_no_overlap")
    other_session = ", session_key WITH <>" if sessions else ""
    op.execute(
        "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_provider_no_overlap "
        "EXCLUDE USING gist (provider_id WITH =, "
        f"tstzrange(blocked_start_at, blocked_end_at, '[)') WITH &&{other_session}) "
        f"WHERE (status IN ({TAKING_TIME}))"
    )


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    # Plain ALTERs on both databases: batch mode would rebuild the SQLite tables and lose
    # the triggers of migrations 0008, 0009 and 0012 (which already cover every column of
    # services: a change of capacity raises the rules version).
    op.add_column(
        "services", sa.Column("capacity", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column(
        "appointments", sa.Column("seat_no", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column(
        "appointments", sa.Column("capacity", sa.Integer(), server_default="1", nullable=False)
    )
    if postgresql:
        op.add_column("appointments", sa.Column("session_key", sa.Uuid(), nullable=True))
        op.execute("UPDATE appointments SET session_key = id")
        op.alter_column("appointments", "session_key", nullable=False)
        op.create_check_constraint(
            op.f("ck_services_capacity_in_range"), "services", "capacity BETWEEN 1 AND 500"
        )
        op.create_check_constraint(
            op.f("ck_appointments_seat_in_capacity"),
            "appointments",
            "seat_no BETWEEN 1 AND capacity",
        )
        _provider_constraint(sessions=True)
    else:
        # SQLite adds a NOT NULL column only with a default; every row then gets its own id
        # (the same CHAR(32) hex form), and the application always sets the key.
        op.add_column(
            "appointments",
            sa.Column("session_key", sa.Uuid(), server_default="0" * 32, nullable=False),
        )
        op.execute("UPDATE appointments SET session_key = id")
    op.create_index(
        SEAT_INDEX,
        "appointments",
        ["session_key", "seat_no"],
        unique=True,
        postgresql_where=sa.text(f"status IN ({TAKING_TIME})"),
        sqlite_where=sa.text(f"status IN ({TAKING_TIME})"),
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    # Before group sessions a time held one appointment: each session keeps its lowest seat
    # that takes time (not always seat 1: that one may have been cancelled), the others are
    # cancelled, or the old exclusion constraint could not be made again.
    keep_lowest = (  # built from this file's constants only
        "UPDATE appointments SET status = 'cancelled'"  # noqa: S608
        f" WHERE status IN ({TAKING_TIME}) AND EXISTS (SELECT 1 FROM appointments AS other"
        "  WHERE other.session_key = appointments.session_key"
        f"  AND other.status IN ({TAKING_TIME}) AND other.seat_no < appointments.seat_no)"
    )
    op.execute(keep_lowest)
    op.drop_index(SEAT_INDEX, table_name="appointments")
    if postgresql:
        _provider_constraint(sessions=False)
        op.drop_constraint(op.f("ck_appointments_seat_in_capacity"), "appointments", type_="check")
        op.drop_constraint(op.f("ck_services_capacity_in_range"), "services", type_="check")
    op.drop_column("appointments", "session_key")
    op.drop_column("appointments", "capacity")
    op.drop_column("appointments", "seat_no")
    op.drop_column("services", "capacity")

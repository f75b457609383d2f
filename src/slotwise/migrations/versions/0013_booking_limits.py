"""providers' booking limits: bookings a local day and a local week, and one client's active
future bookings (null: no limit); checked by the booking write (see slotwise.booking.write)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("max_bookings_per_day", "max_bookings_per_week", "max_active_bookings_per_client")


def upgrade() -> None:
    # Plain ALTERs on both databases: batch mode would rebuild the SQLite table and lose its
    # triggers (migrations 0008, 0009, 0012). A change to these raises the rules version
    # like any change to the profile.
    for name in COLUMNS:
        op.add_column("providers", sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("providers", name)

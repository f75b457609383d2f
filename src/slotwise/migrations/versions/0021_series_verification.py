"""a guest's series with a provider that verifies guests' emails: one verification link for
the whole series (``appointment_series.verify_token_hash``, the fingerprint of the secret
mailed to the guest), while every occurrence is held as ``pending_verification``

A plain ADD COLUMN and a unique index (as migration 0011 gave appointments theirs): batch
mode is not needed for a new nullable column on SQLite.

Revision ID: 0021
Revises: 0020
Create Date: 2027-02-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_appointment_series_verify_token_hash"


def upgrade() -> None:
    op.add_column(
        "appointment_series", sa.Column("verify_token_hash", sa.String(64), nullable=True)
    )
    op.create_index(INDEX, "appointment_series", ["verify_token_hash"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="appointment_series")
    op.drop_column("appointment_series", "verify_token_hash")

"""weekly patterns may end at midnight (end_time 00:00: the end of the day)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 20:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIDNIGHT_OR_AFTER_START = (
    "start_time < end_time OR end_time = '00:00:00' OR end_time = '00:00:00.000000'"
)


NAME = "ck_weekly_patterns_start_before_end"


def upgrade() -> None:
    with op.batch_alter_table("weekly_patterns") as batch_op:
        batch_op.drop_constraint(op.f(NAME), type_="check")
        batch_op.create_check_constraint(op.f(NAME), MIDNIGHT_OR_AFTER_START)


def downgrade() -> None:
    # The old schema cannot say "until midnight": such patterns end a minute before it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE weekly_patterns SET end_time = TIME '23:59' WHERE end_time = TIME '00:00'"
        )
    else:
        op.execute(
            "UPDATE weekly_patterns SET end_time = '23:59:00.000000'"
            " WHERE end_time = '00:00:00.000000'"
        )
    with op.batch_alter_table("weekly_patterns") as batch_op:
        batch_op.drop_constraint(op.f(NAME), type_="check")
        batch_op.create_check_constraint(op.f(NAME), "start_time < end_time")

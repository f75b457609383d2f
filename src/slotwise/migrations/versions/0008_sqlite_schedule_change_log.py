"""a log of schedule changes for SQLite's workers: triggers write whose schedule changed,
so a worker's slot cache forgets only those (see slotwise.availability.changes)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> the column naming whom a change concerns (as in migration 0006)
WATCHED = {
    "providers": "id",
    "services": "provider_id",
    "weekly_patterns": "provider_id",
    "date_overrides": "provider_id",
    "time_off": "provider_id",
    "appointments": "provider_id",
    "users": "id",
}
KEEP = 10_000  # log rows kept; a worker further behind than that forgets everything


def upgrade() -> None:
    op.create_table(
        "schedule_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_schedule_changes")),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL: NOTIFY (migration 0006)
    for table, column in WATCHED.items():
        log = "INSERT INTO schedule_changes (ref) VALUES"
        op.execute(
            f"CREATE TRIGGER {table}_logged_insert AFTER INSERT ON {table}"
            f" BEGIN {log} (NEW.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_logged_update AFTER UPDATE ON {table}"
            f" BEGIN {log} (NEW.{column});"
            f" INSERT INTO schedule_changes (ref) SELECT OLD.{column}"
            f" WHERE OLD.{column} IS NOT NEW.{column}; END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_logged_delete AFTER DELETE ON {table}"
            f" BEGIN {log} (OLD.{column}); END"
        )
    prune = f"DELETE FROM schedule_changes WHERE seq <= NEW.seq - {KEEP}"  # noqa: S608
    op.execute(
        "CREATE TRIGGER schedule_changes_pruned AFTER INSERT ON schedule_changes"
        f" BEGIN {prune}; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in WATCHED:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_logged_{action}")
        op.execute("DROP TRIGGER IF EXISTS schedule_changes_pruned")
    op.drop_table("schedule_changes")

"""calendar busy time: ``calendar_busy``, the busy intervals read from providers' connected
calendars, part of their terms: its rows announce themselves to the slot caches (as
migrations 0006 and 0008 do for the other sources) and raise the provider's rules version
(as migration 0009 does for time off)

Revision ID: 0023
Revises: 0022
Create Date: 2027-02-10 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slotwise.db

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "calendar_busy"
COLUMN = "provider_id"
BUMP = "UPDATE providers SET rules_version = rules_version + 1"


def upgrade() -> None:
    instant = slotwise.db.UTCDateTime(timezone=True)
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("calendar_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", instant, nullable=False),
        sa.Column("end_at", instant, nullable=False),
        sa.CheckConstraint("start_at < end_at", name=op.f("ck_calendar_busy_start_before_end")),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["external_calendars.id"],
            name=op.f("fk_calendar_busy_calendar_id_external_calendars"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_calendar_busy_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_busy")),
    )
    op.create_index(op.f("ix_calendar_busy_calendar_id"), TABLE, ["calendar_id"], unique=False)
    op.create_index(
        "ix_calendar_busy_provider_start", TABLE, ["provider_id", "start_at"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _postgres_triggers() -> None:
    # The functions of migrations 0006 and 0009, as every source of terms has them.
    op.execute(
        f"CREATE TRIGGER {TABLE}_schedule_changed AFTER INSERT OR UPDATE OR DELETE ON {TABLE}"
        f" FOR EACH ROW EXECUTE FUNCTION slotwise_schedule_changed('{COLUMN}')"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_schedule_truncated AFTER TRUNCATE ON {TABLE}"
        " FOR EACH STATEMENT EXECUTE FUNCTION slotwise_schedule_truncated()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_rules_changed AFTER INSERT OR UPDATE OR DELETE ON {TABLE}"
        " FOR EACH ROW EXECUTE FUNCTION slotwise_rules_changed()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_rules_truncated AFTER TRUNCATE ON {TABLE}"
        " FOR EACH STATEMENT EXECUTE FUNCTION slotwise_rules_truncated()"
    )


def _sqlite_triggers() -> None:
    log = "INSERT INTO schedule_changes (ref) VALUES"
    op.execute(
        f"CREATE TRIGGER {TABLE}_logged_insert AFTER INSERT ON {TABLE}"
        f" BEGIN {log} (NEW.{COLUMN}); END"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_logged_update AFTER UPDATE ON {TABLE}"
        f" BEGIN {log} (NEW.{COLUMN});"
        f" INSERT INTO schedule_changes (ref) SELECT OLD.{COLUMN}"
        f" WHERE OLD.{COLUMN} IS NOT NEW.{COLUMN}; END"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_logged_delete AFTER DELETE ON {TABLE}"
        f" BEGIN {log} (OLD.{COLUMN}); END"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_rules_insert AFTER INSERT ON {TABLE}"
        f" BEGIN {BUMP} WHERE id = NEW.{COLUMN}; END"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_rules_update AFTER UPDATE ON {TABLE}"
        f" BEGIN {BUMP} WHERE id IN (NEW.{COLUMN}, OLD.{COLUMN}); END"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_rules_delete AFTER DELETE ON {TABLE}"
        f" BEGIN {BUMP} WHERE id = OLD.{COLUMN}; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("schedule_changed", "schedule_truncated", "rules_changed", "rules_truncated"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{name} ON {TABLE}")
    else:
        for name in ("logged", "rules"):
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{name}_{action}")
    op.drop_index("ix_calendar_busy_provider_start", table_name=TABLE)
    op.drop_index(op.f("ix_calendar_busy_calendar_id"), table_name=TABLE)
    op.drop_table(TABLE)

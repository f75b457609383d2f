"""schedule change notices (PostgreSQL): every change to what slots are computed from is
announced on the channel `slotwise_schedule`, so each worker's slot cache hears of it,
whichever process or tool made the change (see slotwise.availability.changes)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 10:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "slotwise_schedule"
# table -> the column naming whom a change concerns (a provider, or a provider's user)
WATCHED = {
    "providers": "id",
    "services": "provider_id",
    "weekly_patterns": "provider_id",
    "date_overrides": "provider_id",
    "time_off": "provider_id",
    "appointments": "provider_id",
    "users": "id",
}

FUNCTION = f"""
CREATE FUNCTION slotwise_schedule_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    column_name text := TG_ARGV[0];
    new_id text;
    old_id text;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        new_id := to_jsonb(NEW) ->> column_name;
        PERFORM pg_notify('{CHANNEL}', new_id);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_id := to_jsonb(OLD) ->> column_name;
        IF old_id IS DISTINCT FROM new_id THEN
            PERFORM pg_notify('{CHANNEL}', old_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""


# TRUNCATE has no rows to name: every worker forgets everything.
TRUNCATED = f"""
CREATE FUNCTION slotwise_schedule_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', 'flush');
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: workers watch PRAGMA data_version instead
    op.execute(FUNCTION)
    op.execute(TRUNCATED)
    for table, column in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER {table}_schedule_changed"
            f" AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION slotwise_schedule_changed('{column}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_schedule_truncated AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION slotwise_schedule_truncated()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_schedule_changed ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_schedule_truncated ON {table}")
    op.execute("DROP FUNCTION IF EXISTS slotwise_schedule_changed()")
    op.execute("DROP FUNCTION IF EXISTS slotwise_schedule_truncated()")

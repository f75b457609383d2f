"""providers.rules_version: a number that every change to what a booking is checked against
raises (the profile, its account, services, weekly hours, overrides, time off), kept by
triggers, so a worker can keep a provider's rules and prove them current inside a booking's
transaction (see slotwise.booking.terms)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES_TABLES = ("services", "weekly_patterns", "date_overrides", "time_off")
BUMP = "UPDATE providers SET rules_version = rules_version + 1"

POSTGRES_RULES = f"""
CREATE FUNCTION slotwise_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {BUMP} WHERE id = NEW.provider_id;
    ELSIF TG_OP = 'DELETE' THEN
        {BUMP} WHERE id = OLD.provider_id;
    ELSE
        {BUMP} WHERE id IN (NEW.provider_id, OLD.provider_id);
    END IF;
    RETURN NULL;
END
$$
"""

POSTGRES_ALL = f"""
CREATE FUNCTION slotwise_rules_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP};
    RETURN NULL;
END
$$
"""

# A change to the profile itself raises its number, unless the change is that raise.
POSTGRES_PROFILE = """
CREATE FUNCTION slotwise_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.rules_version = OLD.rules_version THEN
        NEW.rules_version := OLD.rules_version + 1;
    END IF;
    RETURN NEW;
END
$$
"""

POSTGRES_ACCOUNT = f"""
CREATE FUNCTION slotwise_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP} WHERE user_id = NEW.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    # A plain ALTER on both databases: batch mode would rebuild the SQLite table and lose
    # the triggers migration 0008 put on it.
    op.add_column(
        "providers", sa.Column("rules_version", sa.BigInteger(), server_default="0", nullable=False)
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _postgres_triggers() -> None:
    for function in (POSTGRES_RULES, POSTGRES_ALL, POSTGRES_PROFILE, POSTGRES_ACCOUNT):
        op.execute(function)
    for table in RULES_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_rules_changed AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION slotwise_rules_changed()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_rules_truncated AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION slotwise_rules_truncated()"
        )
    op.execute(
        "CREATE TRIGGER providers_rules_changed BEFORE UPDATE ON providers"
        " FOR EACH ROW EXECUTE FUNCTION slotwise_profile_changed()"
    )
    op.execute(
        "CREATE TRIGGER users_rules_changed AFTER UPDATE ON users"
        " FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)"
        " EXECUTE FUNCTION slotwise_account_changed()"
    )


def _sqlite_triggers() -> None:
    # SQLite runs no trigger from a trigger's own UPDATE of its table (recursive_triggers
    # is off), and the profile's trigger skips updates that already raised the number.
    for table in RULES_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_rules_insert AFTER INSERT ON {table}"
            f" BEGIN {BUMP} WHERE id = NEW.provider_id; END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_rules_update AFTER UPDATE ON {table}"
            f" BEGIN {BUMP} WHERE id IN (NEW.provider_id, OLD.provider_id); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_rules_delete AFTER DELETE ON {table}"
            f" BEGIN {BUMP} WHERE id = OLD.provider_id; END"
        )
    op.execute(
        "CREATE TRIGGER providers_rules_changed AFTER UPDATE ON providers"
        " WHEN NEW.rules_version = OLD.rules_version"
        f" BEGIN {BUMP} WHERE id = NEW.id; END"
    )
    op.execute(
        "CREATE TRIGGER users_rules_changed AFTER UPDATE ON users"
        f" BEGIN {BUMP} WHERE user_id = NEW.id; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in RULES_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_rules_changed ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_rules_truncated ON {table}")
        op.execute("DROP TRIGGER IF EXISTS providers_rules_changed ON providers")
        op.execute("DROP TRIGGER IF EXISTS users_rules_changed ON users")
        for function in ("rules_changed", "rules_truncated", "profile_changed", "account_changed"):
            op.execute(f"DROP FUNCTION IF EXISTS slotwise_{function}()")
    else:
        for table in RULES_TABLES:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_rules_{action}")
        op.execute("DROP TRIGGER IF EXISTS providers_rules_changed")
        op.execute("DROP TRIGGER IF EXISTS users_rules_changed")
    op.drop_column("providers", "rules_version")

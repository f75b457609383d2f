"""a provider's row, when inserted, starts at a rules version no kept terms hold: a provider
deleted and inserted again with the same id (restored by an operator) would otherwise start
again from its default and could meet the number a worker's kept terms of the old row hold
(see slotwise.availability.sources and slotwise.booking.terms)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A random start below 2**62: two rows meet with a chance of one in 2**62, and the raises
# that follow never reach the end of a bigint.
SPAN = 2**62

POSTGRES_FUNCTION = f"""
CREATE FUNCTION slotwise_profile_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.rules_version := floor(random() * {SPAN})::bigint;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER providers_rules_inserted BEFORE INSERT ON providers"
            " FOR EACH ROW EXECUTE FUNCTION slotwise_profile_inserted()"
        )
    else:
        # SQLite's random() spans the whole 64 bits; its remainder keeps abs() clear of the
        # one value it cannot negate.
        start = f"UPDATE providers SET rules_version = abs(random() % {SPAN})"  # noqa: S608
        op.execute(
            "CREATE TRIGGER providers_rules_inserted AFTER INSERT ON providers"
            f" BEGIN {start} WHERE id = NEW.id; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS providers_rules_inserted ON providers")
        op.execute("DROP FUNCTION IF EXISTS slotwise_profile_inserted()")
    else:
        op.execute("DROP TRIGGER IF EXISTS providers_rules_inserted")

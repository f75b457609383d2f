"""appointment change notices: a change to an appointment is announced with the appointment
as the change left it, so each worker's kept slot listings apply it instead of forgetting
themselves (see slotwise.availability.cache); other tables' notices still name only whose
schedule changed

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "slotwise_schedule"
# The columns a notice describes an appointment by (``availability.sources``, as of this
# migration; a test holds the database's triggers to the declaration).
DESCRIBED = (
    "id",
    "status",
    "start_at",
    "blocked_start_at",
    "blocked_end_at",
    "hold_until",
    "session_key",
    "service_id",
    "capacity",
)


def _pairs(row: str) -> str:
    return ", ".join(f"'{column}', {row}.{column}" for column in DESCRIBED)


# The provider's column is the trigger's argument, as for every other watched table
# (migration 0006); an appointment moved to another provider also voids the first one's.
FUNCTION = f"""
CREATE FUNCTION slotwise_appointment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    column_name text := TG_ARGV[0];
    new_id text;
    old_id text;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        new_id := to_jsonb(NEW) ->> column_name;
        PERFORM pg_notify(
            '{CHANNEL}', json_build_object('provider_id', new_id, {_pairs("NEW")})::text
        );
    END IF;
    IF TG_OP = 'DELETE' THEN
        old_id := to_jsonb(OLD) ->> column_name;
        PERFORM pg_notify(
            '{CHANNEL}',
            json_build_object('provider_id', old_id, 'id', OLD.id, 'deleted', true)::text
        );
    ELSIF TG_OP = 'UPDATE' THEN
        old_id := to_jsonb(OLD) ->> column_name;
        IF old_id IS DISTINCT FROM new_id THEN
            PERFORM pg_notify('{CHANNEL}', old_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""

_LOG = "INSERT INTO schedule_changes (ref, detail) VALUES"


def upgrade() -> None:
    op.add_column("schedule_changes", sa.Column("detail", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)
        op.execute("DROP TRIGGER appointments_schedule_changed ON appointments")
        op.execute(
            "CREATE TRIGGER appointments_schedule_changed"
            " AFTER INSERT OR UPDATE OR DELETE ON appointments"
            " FOR EACH ROW EXECUTE FUNCTION slotwise_appointment_changed('provider_id')"
        )
        return
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER appointments_logged_{action}")
    described = f"json_object({_pairs('NEW')})"
    op.execute(
        "CREATE TRIGGER appointments_logged_insert AFTER INSERT ON appointments"
        f" BEGIN {_LOG} (NEW.provider_id, {described}); END"
    )
    op.execute(
        "CREATE TRIGGER appointments_logged_update AFTER UPDATE ON appointments"
        f" BEGIN {_LOG} (NEW.provider_id, {described});"
        " INSERT INTO schedule_changes (ref) SELECT OLD.provider_id"
        " WHERE OLD.provider_id IS NOT NEW.provider_id; END"
    )
    op.execute(
        "CREATE TRIGGER appointments_logged_delete AFTER DELETE ON appointments"
        f" BEGIN {_LOG} (OLD.provider_id, json_object('id', OLD.id, 'deleted', 1)); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER appointments_schedule_changed ON appointments")
        op.execute(
            "CREATE TRIGGER appointments_schedule_changed"
            " AFTER INSERT OR UPDATE OR DELETE ON appointments"
            " FOR EACH ROW EXECUTE FUNCTION slotwise_schedule_changed('provider_id')"
        )
        op.execute("DROP FUNCTION slotwise_appointment_changed()")
    else:
        log = "INSERT INTO schedule_changes (ref) VALUES"
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER appointments_logged_{action}")
        op.execute(
            "CREATE TRIGGER appointments_logged_insert AFTER INSERT ON appointments"
            f" BEGIN {log} (NEW.provider_id); END"
        )
        op.execute(
            "CREATE TRIGGER appointments_logged_update AFTER UPDATE ON appointments"
            f" BEGIN {log} (NEW.provider_id);"
            " INSERT INTO schedule_changes (ref) SELECT OLD.provider_id"
            " WHERE OLD.provider_id IS NOT NEW.provider_id; END"
        )
        op.execute(
            "CREATE TRIGGER appointments_logged_delete AFTER DELETE ON appointments"
            f" BEGIN {log} (OLD.provider_id); END"
        )
    op.drop_column("schedule_changes", "detail")

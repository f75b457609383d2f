"""The hot statements keep one text on PostgreSQL: no parameter SQLAlchemy must expand (and
so rewrite the statement) at each execution."""

from __future__ import annotations

import pytest
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from slotwise.auth import callers, revocation
from slotwise.booking import write
from slotwise.models import Base


def _keys(table: str) -> tuple[str, ...]:
    """Every column of a table: the shape of the rows a booking writes."""
    return tuple(column.key for column in Base.metadata.tables[table].columns)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(write._judged_unnested(), id="judgment"),
        pytest.param(write._judged_padded(8), id="padded judgment"),
        pytest.param(write._judged_unnested(seats=True), id="judgment with seats"),
        pytest.param(write._judged_padded(8, seats=True), id="padded judgment with seats"),
        pytest.param(write._judged_unnested(holds=True), id="judgment of holds"),
        pytest.param(write._judged_padded(8, holds=True), id="padded judgment of holds"),
        pytest.param(
            write._judge_and_insert_statement(
                *(_keys(t) for t in ("appointments", "appointment_events", "outbox_messages"))
            ),
            id="judgment and write",
        ),
        pytest.param(callers._USERS_AMONG[True], id="users"),
        pytest.param(callers._USERS_AMONG_ANY_REVOKED[True], id="users-denylist"),
        pytest.param(revocation._LISTED_AMONG[True], id="denylist"),
    ],
)
def test_no_parameter_is_expanded_at_execution(statement: ClauseElement) -> None:
    compiled = statement.compile(dialect=asyncpg_dialect())
    assert not compiled.post_compile_params
    assert "POSTCOMPILE" not in str(compiled)


def test_active_statuses_are_constants_and_lists_are_arrays() -> None:
    text = str(callers._USERS_AMONG[True].compile(dialect=asyncpg_dialect()))
    assert "= ANY ($1::UUID[])" in text
    conflicts = str(write._judged_padded(1).compile())
    taking = "'pending', 'confirmed', 'pending_verification', 'held'"
    assert f"appointments.status IN ({taking})" in conflicts

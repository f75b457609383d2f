"""The hot statements keep one text on PostgreSQL: no parameter SQLAlchemy must expand (and
so rewrite the statement) at each execution."""

from __future__ import annotations

import pytest
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from slotwise.auth import callers, revocation
from slotwise.booking import repository


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(repository._CONFLICTS_UNNESTED, id="batch"),
        pytest.param(repository._conflicts_query(8, excluding=False, standing=True), id="padded"),
        pytest.param(repository._conflicts_query(1, excluding=True, standing=False), id="one"),
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
    conflicts = str(repository._conflicts_query(1, excluding=False, standing=False).compile())
    assert "appointments.status IN ('pending', 'confirmed', 'pending_verification')" in conflicts

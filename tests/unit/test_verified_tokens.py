"""Verified access tokens kept by a worker: still refused once expired, never trusted unseen."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from slotwise.auth import tokens
from slotwise.auth.tokens import InvalidToken, TokenType, VerifiedAccessTokens
from tests.conftest import make_settings

SETTINGS = make_settings("sqlite+aiosqlite://")


def _access(now: datetime, settings: object = SETTINGS) -> tokens.IssuedToken:
    return tokens.issue(
        settings,  # type: ignore[arg-type]
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        token_type=TokenType.ACCESS,
        now=now,
    )


def test_a_kept_token_is_refused_from_its_expiry_on() -> None:
    now = datetime.now(UTC)
    issued = _access(now)
    expected = tokens.decode(SETTINGS, issued.token, expected=TokenType.ACCESS)
    verified = VerifiedAccessTokens(SETTINGS)
    assert verified.claims(issued.token, now=now) == expected
    just_before = expected.expires_at - timedelta(microseconds=1)
    assert verified.claims(issued.token, now=just_before) == expected
    with pytest.raises(InvalidToken):
        verified.claims(issued.token, now=expected.expires_at)
    assert issued.token not in verified._claims  # no longer kept


def test_only_the_exact_text_verified_is_kept() -> None:
    now = datetime.now(UTC)
    issued = _access(now)
    verified = VerifiedAccessTokens(SETTINGS)
    verified.claims(issued.token, now=now)
    header, payload, signature = issued.token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(InvalidToken):
        verified.claims(forged, now=now)
    other_key = make_settings("sqlite+aiosqlite://", secret_key="another-secret-" + "x" * 40)
    with pytest.raises(InvalidToken):
        verified.claims(_access(now, other_key).token, now=now)
    refresh = tokens.issue(
        SETTINGS,
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        token_type=TokenType.REFRESH,
        now=now,
    )
    with pytest.raises(InvalidToken):
        verified.claims(refresh.token, now=now)


def test_the_kept_tokens_are_bounded() -> None:
    now = datetime.now(UTC)
    verified = VerifiedAccessTokens(SETTINGS, max_entries=3)
    issued = [_access(now) for _ in range(5)]
    for one in issued:
        verified.claims(one.token, now=now)
    assert len(verified._claims) == 3
    assert issued[0].token not in verified._claims
    again = verified.claims(issued[0].token, now=now)  # verified again
    assert again.jti == issued[0].claims.jti

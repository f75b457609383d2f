"""JWT access and refresh tokens (PyJWT), with the algorithm pinned and every claim checked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

from slotwise.config import Settings
from slotwise.errors import Unauthorized


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    message = "The token is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    expires_at: datetime
    token_type: TokenType
    issued_at: datetime
    # Set for an API key's claims (apikeys.service.claims_of): the key, not a session.
    api_key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "sid"]


def new_secret_token() -> str:
    """An opaque token of 256 random bits from the CSPRNG."""
    return secrets.token_urlsafe(32)


def fingerprint(token: str) -> str:
    """What the database keeps of a token: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    token_type: TokenType,
    now: datetime,
) -> IssuedToken:
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if token_type is TokenType.ACCESS
        else timedelta(days=settings.refresh_token_days)
    )
    claims = TokenClaims(
        user_id=user_id,
        session_id=session_id,
        jti=secrets.token_hex(16),
        expires_at=now + lifetime,
        token_type=token_type,
        issued_at=now,
    )
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": claims.jti,
        "typ": token_type.value,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    token = jwt.encode(payload, settings.signing_key(), algorithm=settings.jwt_algorithm)
    return IssuedToken(token=token, claims=claims)


def _instant(claim: object) -> datetime:
    """A time claim (exp, iat, nbf) as Slotwise issues it: whole seconds since the epoch, a
    JSON integer (not a numeric string, not a float, not a boolean), within datetime's range.
    """
    if type(claim) is not int:
        raise TypeError("a time claim must be an integer")
    return datetime.fromtimestamp(claim, tz=UTC)


def decode(settings: Settings, token: str, *, expected: TokenType) -> TokenClaims:
    """Verify signature, algorithm, expiry, issuer, audience and type, or raise InvalidToken."""
    try:
        payload = jwt.decode(
            token,
            settings.signing_key(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        token_type = TokenType(payload["typ"])
        claims = TokenClaims(
            user_id=uuid.UUID(payload["sub"]),
            session_id=uuid.UUID(payload["sid"]),
            jti=str(payload["jti"]),
            expires_at=_instant(payload["exp"]),
            token_type=token_type,
            issued_at=_instant(payload["iat"]),
        )
        if "nbf" in payload:
            _instant(payload["nbf"])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError, OSError) as exc:
        # OverflowError, OSError: a time claim beyond what a datetime (or PyJWT's int) holds
        raise InvalidToken() from exc
    if token_type is not expected:
        raise InvalidToken(
            f"A {token_type.value} token was given where {expected.value} is needed."
        )
    return claims


class VerifiedAccessTokens:
    """Access tokens this worker has verified, by their text, with their claims.

    A signed-in client sends the same token with every request, and verifying it (HMAC,
    JSON, every claim) was the largest part of authenticating one. The same text verifies
    the same way, except for time: a kept token's expiry is checked again at every use.
    Revocation (of the token or of its whole session), the account's state and the
    password-reset cutoff are not kept here: they are checked against the denylist and the
    database on every request (auth.callers), so an ended session's token is refused even
    while it is kept.
    """

    def __init__(self, settings: Settings, *, max_entries: int = 10_000) -> None:
        self.settings = settings
        self.max_entries = max_entries
        self._claims: dict[str, TokenClaims] = {}

    def claims(self, token: str, *, now: datetime) -> TokenClaims:
        found = self._claims.get(token)
        if found is None:
            found = decode(self.settings, token, expected=TokenType.ACCESS)
            if len(self._claims) >= self.max_entries:
                del self._claims[next(iter(self._claims))]  # the oldest verified
            self._claims[token] = found
        if found.expires_at <= now:  # as PyJWT decides: valid while now < exp
            del self._claims[token]
            raise InvalidToken()
        return found

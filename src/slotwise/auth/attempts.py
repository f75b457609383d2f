"""Failed logins, counted so that nobody can lock another person out of their account.

Failures count per account and client address: an attacker guessing from one address is
stopped there, and the account's owner, at another address, still signs in. A higher
ceiling per account, across every address, stops guessing spread over many addresses.
Only failures count (a wrong password or an unknown email), and an attempt is refused
before its password is checked once either count is full.
"""

from __future__ import annotations

from slotwise.auth import service
from slotwise.auth.passwords import PasswordHasher
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.ratelimit import RateLimiter
from slotwise.users.models import User


async def authenticate(
    database: Database,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    settings: Settings,
    *,
    email: str,
    password: str,
    client_ip: str,
) -> User:
    """``service.authenticate``, refused (429) while the account's failures from this address,
    or from all addresses, are at their limit (``settings``); a failure is counted in both."""
    counts = _counts(settings, email, client_ip)
    for limit, scope, key in counts:
        await limiter.check(limit, scope, key)
    try:
        return await service.authenticate(database, hasher, email=email, password=password)
    except service.InvalidCredentials:
        for limit, scope, key in counts:
            await limiter.count(limit, scope, key)
        raise


async def is_password(
    hasher: PasswordHasher,
    limiter: RateLimiter,
    settings: Settings,
    *,
    user: User,
    password: str,
    client_ip: str,
) -> bool:
    """Whether ``password`` is the signed-in ``user``'s (changing it asks for the current
    one), counted as a login would be: a wrong one is a failure of the account's, and a
    stolen session cannot guess the password faster than a login could (429 at the limit)."""
    counts = _counts(settings, user.email, client_ip)
    for limit, scope, key in counts:
        await limiter.check(limit, scope, key)
    if await hasher.verify(password, user.hashed_password):
        return True
    for limit, scope, key in counts:
        await limiter.count(limit, scope, key)
    return False


def _counts(settings: Settings, email: str, client_ip: str) -> tuple[tuple[str, str, str], ...]:
    account = email.strip().lower()
    return (
        (settings.rate_limit_login_account, "login-failures", f"{account}|{client_ip}"),
        (settings.rate_limit_login_account_ceiling, "login-failures-account", account),
    )

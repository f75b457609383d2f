"""Failed logins, counted so that nobody can lock another person out of their account.

Failures count per account and client address: an attacker guessing from one address is
stopped there, and the account's owner, at another address, still signs in. A higher
ceiling per account, across every address, stops guessing spread over many addresses.
Only failures count (a wrong password or an unknown email), and an attempt is refused
before its password is checked once either count is full.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth import service
from slotwise.state import AppState
from slotwise.users.models import User


async def authenticate(
    session: AsyncSession, app: AppState, *, email: str, password: str, client_ip: str
) -> User:
    """``service.authenticate``, refused (429) while the account's failures from this address,
    or from all addresses, are at their limit; a failure is counted in both."""
    settings = app.settings
    account = email.strip().lower()
    counts = (
        (settings.rate_limit_login_account, "login-failures", f"{account}|{client_ip}"),
        (settings.rate_limit_login_account_ceiling, "login-failures-account", account),
    )
    for limit, scope, key in counts:
        await app.limiter.check(limit, scope, key)
    try:
        return await service.authenticate(session, app, email=email, password=password)
    except service.InvalidCredentials:
        for limit, scope, key in counts:
            await app.limiter.count(limit, scope, key)
        raise

"""Creating admins: only from the command line, never through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from email_validator import EmailNotValidError, validate_email

from slotwise.auth.passwords import PasswordHasher, WeakPassword, check_policy
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.users import repository
from slotwise.users.models import Role, User


async def create_admin(
    settings: Settings, *, email: str, full_name: str, password: str
) -> uuid.UUID:
    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    if not full_name.strip():
        raise ValueError("the full name must not be empty")
    try:
        check_policy(password, email=email)
    except WeakPassword as exc:
        raise ValueError(exc.detail_message) from exc
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
    )
    database = Database(settings.database_url, pool_size=1)
    try:
        # A writer's session (BEGIN IMMEDIATE on SQLite): a read-then-write transaction
        # could not take the write lock once a running server or worker had written.
        async with database.session(writes=True) as session, session.begin():
            if await repository.get_by_email(session, email) is not None:
                raise ValueError(f"a user with email {email} already exists")
            now = datetime.now(UTC)
            user = User(
                email=email,
                full_name=full_name.strip(),
                role=Role.ADMIN,
                hashed_password=await hasher.hash(password),
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
            return user.id
    finally:
        await database.dispose()

"""Password policy and argon2id hashing (pwdlib)."""

from __future__ import annotations

import asyncio
import os
from functools import cache
from importlib import resources

import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from slotwise.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 128


class WeakPassword(InvalidInput):
    code = "weak_password"
    message = "The password does not meet the password policy."


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("slotwise.auth").joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def check_policy(password: str, *, email: str | None = None) -> None:
    """Raise :class:`WeakPassword` unless the password is acceptable."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPassword(f"Passwords must be {MIN_LENGTH} to {MAX_LENGTH} characters long.")
    if password.lower() in _common_passwords():
        raise WeakPassword("This password is too common; choose another.")
    if email and password.lower() == email.lower():
        raise WeakPassword("The password must not be the email address.")


class PasswordHasher:
    """argon2id hashing; the work runs in a thread so the event loop is never blocked, at most
    one hash a CPU at a time: each takes the memory cost (64 MiB by default), and hashes
    beyond the CPUs would only wait for them anyway."""

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))
        self._dummy = self._hash.hash("slotwise-timing-equaliser")
        self._slots = asyncio.Semaphore(len(os.sched_getaffinity(0)))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await anyio.to_thread.run_sync(self._hash.hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Verify; with no hash (unknown user) spend the same time and return False."""
        async with self._slots:
            if hashed is None:
                await anyio.to_thread.run_sync(self._hash.verify, password, self._dummy)
                return False
            return await anyio.to_thread.run_sync(self._hash.verify, password, hashed)

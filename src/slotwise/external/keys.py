"""The keys that encrypt calendars' credentials at rest: Fernet (AES-128-CBC with an
HMAC-SHA256, from ``cryptography``), several at once for rotation (``MultiFernet``: the
first key encrypts, every key decrypts; ``rotate`` re-encrypts with the first).

With no key set nothing is encrypted, and so nothing is stored: connecting a calendar is
refused (503 ``calendar_keys_not_configured``) rather than keeping a secret URL or a
password in clear, or one derived from another secret whose rotation would then lose them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from slotwise.errors import ServiceUnavailable


class KeysNotConfigured(ServiceUnavailable):
    code = "calendar_keys_not_configured"
    message = (
        "This server has no key to encrypt calendar credentials with "
        "(SLOTWISE_CALENDAR_KEYS): calendars cannot be connected."
    )


class UnreadableSecret(Exception):
    """A stored secret none of the keys opens (its key was removed before a rotation)."""


def check_key(key: str) -> str:
    """``key`` if it is a Fernet key (32 url-safe base64 bytes), else ValueError."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a Fernet key (32 url-safe base64-encoded bytes)") from exc
    return key


def new_key() -> str:
    return Fernet.generate_key().decode()


class CalendarKeys:
    """Encrypts and decrypts a calendar's secret (a JSON object) with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys]) if keys else None

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _keys(self) -> MultiFernet:
        if self._fernet is None:
            raise KeysNotConfigured()
        return self._fernet

    def seal(self, secret: dict[str, Any]) -> str:
        return self._keys().encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            opened: dict[str, Any] = json.loads(self._keys().decrypt(token.encode()))
        except InvalidToken as exc:
            raise UnreadableSecret("no configured key opens this calendar's secret") from exc
        return opened

    def rotate(self, token: str) -> str:
        """The same secret, encrypted with the first key."""
        try:
            return self._keys().rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise UnreadableSecret("no configured key opens this calendar's secret") from exc

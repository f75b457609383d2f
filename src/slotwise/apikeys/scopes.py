"""What an API key may do: the scope each route needs, declared on the route itself.

The rule, in one place (``needed``):

- a route that only reads (GET, HEAD) needs ``read``, unless it declares otherwise;
- any other route needs the scope it declares with ``@needs(...)``: ``book`` for booking,
  cancelling and rescheduling, ``manage`` for the owner's management (hours, services,
  profile, webhooks, confirming and declining...);
- a route declared ``@session_only`` takes no key at all, whatever its scopes: the routes
  that make or end credentials (API keys, logout, the password, calendar feed URLs);
- a route that changes something and declares nothing takes no key either (fail closed).

``tests/apikeys/test_scopes_declared.py`` walks every route of the application and requires
each that reads a caller's token and changes something to declare its scope, so a new route
cannot be left to the last rule by accident. The declaration is an attribute of the
endpoint function: it costs a request nothing (a session token never looks at it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Final, TypeVar

from slotwise.errors import Forbidden

E = TypeVar("E", bound=Callable[..., Any])

READ_ONLY_METHODS: Final = frozenset({"GET", "HEAD"})
_ATTRIBUTE: Final = "__slotwise_api_key_scope__"
# Each operation that reads a caller's token shows under this name, in the OpenAPI document,
# the scope a key needs for it, or NO_KEY: no key may use it.
OPENAPI_KEY: Final = "x-api-key-scope"
NO_KEY: Final = "none"


class Scope(StrEnum):
    READ = "read"
    BOOK = "book"
    MANAGE = "manage"


class SessionOnly(StrEnum):
    """The declaration of a route no API key may use."""

    SESSION = "session"


Declared = Scope | SessionOnly


def needs(scope: Scope) -> Callable[[E], E]:
    """Declare the scope a key needs for this route."""

    def declare(endpoint: E) -> E:
        setattr(endpoint, _ATTRIBUTE, scope)
        return endpoint

    return declare


def session_only(endpoint: E) -> E:
    """Declare that this route needs a signed-in session: no API key may use it."""
    setattr(endpoint, _ATTRIBUTE, SessionOnly.SESSION)
    return endpoint


def declared(endpoint: Callable[..., Any]) -> Declared | None:
    """What the route's endpoint declares, if anything."""
    found: Declared | None = getattr(endpoint, _ATTRIBUTE, None)
    return found


def needed(endpoint: Callable[..., Any], methods: Iterable[str]) -> Scope | None:
    """The scope a key needs for a route of these methods; None: no key may use it."""
    found = declared(endpoint)
    if isinstance(found, Scope):
        return found
    if found is None and set(methods) <= READ_ONLY_METHODS:
        return Scope.READ
    return None


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    message = "This API key does not have the scope this operation needs."


class SessionRequired(Forbidden):
    code = "session_required"
    message = "This operation needs a signed-in session; an API key cannot use it."


def documented(endpoint: Callable[..., Any], methods: Iterable[str]) -> str:
    """The scope as the OpenAPI document shows it."""
    scope = needed(endpoint, methods)
    return NO_KEY if scope is None else scope.value


def check(granted: Iterable[str], endpoint: Callable[..., Any], method: str) -> None:
    """Refuse a key the route's scope (or any key, on a route that takes none)."""
    scope = needed(endpoint, [method])
    if scope is None:
        raise SessionRequired()
    if scope.value not in granted:
        raise InsufficientScope(details={"required_scope": scope.value, "scopes": list(granted)})

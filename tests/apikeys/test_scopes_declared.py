"""Every route that takes a caller says what an API key needs for it, and the OpenAPI
document shows it: a route added without a declaration fails here, not in production."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from slotwise.apikeys import scopes
from slotwise.apikeys.scopes import Scope
from slotwise.auth.deps import CurrentUser, reads_token
from slotwise.config import Settings
from slotwise.main import create_app


def _callers_routes(app: FastAPI) -> list[tuple[APIRoute, str]]:
    """(route, path) of every route of the app that reads the caller's token."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and reads_token(route.dependant):
            found.append((route, str(context.path)))
    return found


def undeclared(app: FastAPI) -> list[str]:
    """Routes that read a caller's token, change something and declare no scope."""
    return [
        f"{sorted(route.methods)} {path}"
        for route, path in _callers_routes(app)
        if not route.methods <= scopes.READ_ONLY_METHODS and scopes.declared(route.endpoint) is None
    ]


def test_every_route_that_takes_a_caller_declares_its_scope(settings: Settings) -> None:
    app = create_app(settings)
    routes = _callers_routes(app)
    assert len(routes) > 50  # the walk sees the application's routes
    assert undeclared(app) == []


def test_a_route_without_a_declaration_is_found_and_takes_no_key(settings: Settings) -> None:
    app = create_app(settings)

    @app.post("/api/v1/extra")
    async def extra(user: CurrentUser) -> None: ...

    assert undeclared(app) == ["['POST'] /api/v1/extra"]
    assert scopes.needed(extra, ["POST"]) is None  # no key may use it meanwhile


def test_the_rule() -> None:
    async def reads() -> None: ...

    @scopes.needs(Scope.BOOK)
    async def books() -> None: ...

    @scopes.session_only
    async def credentials() -> None: ...

    assert scopes.needed(reads, ["GET"]) is Scope.READ
    assert scopes.needed(reads, ["HEAD"]) is Scope.READ
    assert scopes.needed(reads, ["POST"]) is None
    assert scopes.needed(books, ["POST"]) is Scope.BOOK
    assert scopes.needed(credentials, ["GET"]) is None
    assert scopes.needed(credentials, ["DELETE"]) is None


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_openapi_shows_each_operations_scope_and_errors(settings: Settings) -> None:
    app = create_app(settings)
    operations = _operations(app.openapi())
    documented = {
        (method, path): operation
        for (method, path), operation in operations.items()
        if scopes.OPENAPI_KEY in operation
    }
    # Every operation that reads a caller shows the scope and the errors a key can meet.
    for route, path in _callers_routes(app):
        for method in route.methods:
            operation = operations.get((method, path))
            if operation is None:  # an alias left out of the document
                continue
            assert (method, path) in documented, (method, path)
            assert operation[scopes.OPENAPI_KEY] == scopes.documented(route.endpoint, [method])
            assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
    # Public routes name none.
    assert scopes.OPENAPI_KEY not in operations[("GET", "/api/v1/providers/{ref}/slots")]

    booking = operations[("POST", "/api/v1/appointments/")]
    assert booking[scopes.OPENAPI_KEY] == "book"
    assert operations[("PATCH", "/api/v1/providers/me")][scopes.OPENAPI_KEY] == "manage"
    assert operations[("GET", "/api/v1/appointments/{appointment_id}")][scopes.OPENAPI_KEY] == (
        "read"
    )
    keys = {
        ("POST", "/api/v1/api-keys"): {"201", "401", "403", "422", "429"},
        ("GET", "/api/v1/api-keys"): {"200", "401", "403", "422"},
        ("GET", "/api/v1/api-keys/{key_id}"): {"200", "401", "403", "404"},
        ("DELETE", "/api/v1/api-keys/{key_id}"): {"204", "401", "403", "404"},
    }
    for operation_id, statuses in keys.items():
        operation = operations[operation_id]
        assert operation[scopes.OPENAPI_KEY] == "none"  # no key may use them
        assert statuses <= set(operation["responses"]), operation_id
    created = operations[("POST", "/api/v1/api-keys")]["responses"]["201"]
    schema = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "key" in app.openapi()["components"]["schemas"][schema]["properties"]

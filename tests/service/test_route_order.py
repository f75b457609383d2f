"""FastAPI tries routes in the order they were added and takes the first whose path and
method match, so the app's order (``main.create_app``: the hottest routes first, some
routers before others whose parameters would take their literal paths) decides which
operation answers. Every route must be the first to match a path of its own: a route
added later cannot be shadowed by one before it, and one moved earlier cannot take
another's paths."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import compile_path

from slotwise.booking.router import Token
from slotwise.providers.schemas import RESERVED_HANDLES

# What fills a path parameter: no literal segment of any route is a UUID.
FILLER = "0b9e3a1c-5d2f-4e8a-9c7b-1f2e3d4c5b6a"


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", FILLER, path)


def in_order(app: FastAPI) -> list[RouteContext]:
    """The app's API routes as FastAPI tries them, each with the path it answers (an
    included router's prefix, an alias's too)."""
    return [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.path is not None
    ]


def first_match(routes: Sequence[RouteContext], method: str, path: str) -> RouteContext | None:
    for context in routes:
        assert context.path is not None
        pattern, _format, _convertors = compile_path(context.path)
        route = context.original_route
        assert isinstance(route, APIRoute)
        if pattern.match(path) and method in route.methods:
            return context
    return None


def shadowed(routes: Sequence[RouteContext]) -> list[str]:
    found = []
    for context in routes:
        assert context.path is not None
        route = context.original_route
        assert isinstance(route, APIRoute)
        for method in sorted(route.methods):
            path = concrete(context.path)
            first = first_match(routes, method, path)
            if first is None or (first.path, first.original_route) != (context.path, route):
                taken_by = None if first is None else first.path
                found.append(f"{method} {context.path}: {path} goes to {taken_by}")
    return found


def test_every_route_is_the_first_to_match_its_own_paths(app: FastAPI) -> None:
    routes = in_order(app)
    assert len(routes) > 150  # the whole API, its aliases too
    assert shadowed(routes) == []


def test_a_literal_path_after_a_parameter_is_found_shadowed(app: FastAPI) -> None:
    """The check catches an order that shadows: a route for /appointments/mine added after
    /appointments/{appointment_id} would never be reached."""
    late = APIRoute("/api/v1/appointments/mine", _endpoint, methods=["GET"])
    routes = [*in_order(app), RouteContext(late)]
    assert shadowed(routes) == [
        "GET /api/v1/appointments/mine: /api/v1/appointments/mine goes to "
        "/api/v1/appointments/{appointment_id}"
    ]


def _endpoint() -> None:
    """A route's endpoint, never called."""


# Parameters whose values are free text a literal segment could equal: a provider's handle
# (reserved words are refused as handles), a manage token (never shorter than 16).
HANDLES = ("ref", "provider")
TOKENS = ("token",)


def literal_siblings(routes: Sequence[RouteContext]) -> list[tuple[str, str, str]]:
    """(path so far, parameter, literal): a literal segment where another route, with the
    same path so far, takes a free-text parameter; a value equal to the literal would reach
    the literal's route, whichever comes first."""
    paths = sorted({context.path for context in routes if context.path is not None})
    found = set()
    for path in paths:
        for parameter in re.finditer(r"{([^}:]+)}", path):
            before = path[: parameter.start()]
            for other in paths:
                rest = other[len(before) :]
                if other.startswith(before) and rest and not rest.startswith("{"):
                    found.add((before, parameter.group(1), rest.split("/")[0]))
    return sorted(found)


def test_no_handle_or_token_can_equal_a_literal_path_segment(app: FastAPI) -> None:
    """/providers/me/... and /providers/{ref}/...: a provider whose handle were "me" could
    never be reached by it. Every literal beside a handle is a reserved handle, and every
    literal beside a manage token is shorter than any token."""
    siblings = literal_siblings(in_order(app))
    assert ("/api/v1/providers/", "ref", "me") in siblings  # the check sees them
    clashes = [
        (before, parameter, literal)
        for before, parameter, literal in siblings
        if (parameter in HANDLES and literal not in RESERVED_HANDLES)
        or (parameter in TOKENS and len(literal) >= _min_length(Token))
    ]
    assert clashes == []


def _min_length(annotated: object) -> int:
    """The shortest value a path parameter's annotation accepts."""
    rules = [rule for info in annotated.__metadata__ for rule in getattr(info, "metadata", [])]  # type: ignore[attr-defined]
    return min(rule.min_length for rule in rules if hasattr(rule, "min_length"))

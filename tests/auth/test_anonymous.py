"""An anonymous caller of a route that needs a signed-in one is told so (401) before
anything of its request is read: not a 422 that describes the route's inputs to someone
who may not use it."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path

from slotwise.auth.deps import current_user, signed_in_claims

NEEDS_A_CALLER = {current_user, signed_in_claims}


def needs_a_caller(dependant: Dependant) -> bool:
    return dependant.call in NEEDS_A_CALLER or any(
        needs_a_caller(sub) for sub in dependant.dependencies
    )


def test_the_routes_that_need_a_caller_are_found(app: FastAPI) -> None:
    found = {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and needs_a_caller(context.dependant)
        for method in context.original_route.methods
    }
    # Those that look their caller up in a batch, or later, among those that do it at once.
    assert {
        ("POST", "/api/v1/appointments/{appointment_id}/cancel"),
        ("DELETE", "/api/v1/appointments/{appointment_id}"),
        ("PATCH", "/api/v1/appointments/{appointment_id}/status"),
        ("POST", "/api/v1/appointments/{appointment_id}/reschedule"),
        ("PATCH", "/api/v1/users/me"),
        ("GET", "/api/v1/users/me"),
    } <= found


async def test_an_anonymous_caller_is_refused_before_its_request_is_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Every route that needs a caller, each path parameter and the body (if it takes one)
    invalid: 401 all the same."""
    routes = [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.path is not None
    ]
    checked, answered = 0, []
    for context in routes:
        route = context.original_route
        assert isinstance(route, APIRoute)
        assert context.path is not None
        if not needs_a_caller(context.dependant):
            continue
        path = re.sub(r"{[^}]+}", "x", context.path)
        for method in sorted(route.methods):
            first = next(
                other
                for other in routes
                if compile_path(other.path or "")[0].match(path) and method in (other.methods or ())
            )
            if first is not context:  # "x" is another route's literal segment
                continue
            body = {"json": []} if route.body_field is not None else {}
            response = await client.request(method, path.removeprefix("/api/v1"), **body)
            code = response.json().get("code")
            if response.status_code != 401 or code != "not_authenticated":
                answered.append(f"{method} {context.path}: {response.status_code} {code}")
            elif response.headers.get("www-authenticate") != "Bearer":
                answered.append(f"{method} {context.path}: no WWW-Authenticate: Bearer")
            checked += 1
    assert answered == []
    assert checked > 50


async def test_a_body_that_is_not_json_is_refused_as_such_first(
    client: httpx.AsyncClient,
) -> None:
    """The one exception (docs/api.md, "Errors"): FastAPI reads the body before it solves
    the route's dependencies, so a body that does not parse is a 422 whoever sends it."""
    response = await client.post(
        f"/appointments/{uuid.uuid4()}/cancel",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["type"] == "json_invalid"

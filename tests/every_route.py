"""The OpenAPI document of every route of an app, those left out of the public one too
(aliases such as ``DELETE /appointments/{id}``), for tests that check every input."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts


class _Shown(RouteContext):
    """A route as an included router sees it, documented whatever its include_in_schema."""

    @property
    def include_in_schema(self) -> bool:
        return True


def every_route_documented(app: FastAPI) -> dict[str, Any]:
    shown: list[RouteContext] = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            fields = (getattr(context, field.name) for field in dataclasses.fields(context))
            context = _Shown(*fields)
        shown.append(context)
    return get_openapi(title="every route", version="0", routes=shown)


def hidden_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of the routes the public document leaves out."""

    def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
        return {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}

    return operations(every_route_documented(app)) - operations(app.openapi())

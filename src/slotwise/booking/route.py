"""The booking route's common request, served past FastAPI's per-request machinery.

`POST /appointments/` is the hottest write. For every request FastAPI's handler parses the
content type with the `email` package, decodes the JSON with the standard library, solves
the route's dependency graph, validates the decoded dict and builds its error context: a
fixed cost larger than the rest of the route's own code. `BookingRoute` serves the common
request itself: a JSON body that validates and no `Idempotency-Key`. The body is validated
from its bytes by pydantic's own JSON parser, the caller's token read by the same `bearer`
and `optional_claims` the dependency graph calls, the clock read through `get_now` (or the
override the tests install), and the booking written by `book`'s own call. Every other
request (a body that fails validation, an idempotent retry, a dependency override this
path does not know) goes to FastAPI's handler, so errors, their bodies and the OpenAPI
document stay FastAPI's own.

The route's endpoint serves both: `endpoint(request=, data=, claims=, app=, now=,
idempotency_key=)`,
called here with what this path resolved and by FastAPI with what its graph did.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from slotwise.auth.deps import bearer, optional_claims
from slotwise.booking.schemas import AppointmentCreate
from slotwise.state import AppState, get_now

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _now(request: Request) -> datetime:
    clock: Callable[[], Any] = request.app.dependency_overrides.get(get_now, get_now)
    now = clock()
    return await now if inspect.isawaitable(now) else now  # type: ignore[no-any-return]


class BookingRoute(APIRoute):
    """An APIRoute that resolves its endpoint's arguments itself for the common booking
    request and leaves every other one to FastAPI (module docstring)."""

    def get_route_handler(self) -> Handler:
        general = super().get_route_handler()

        async def handler(request: Request) -> Response:
            headers = request.headers
            overrides = request.app.dependency_overrides
            if (
                "idempotency-key" in headers
                or not _is_json(headers.get("content-type"))
                or (overrides and overrides.keys() != {get_now})
            ):
                return await general(request)
            try:
                body = await request.body()
            except HTTPException:
                raise  # a body over the limit (413)
            except Exception:  # the client left: FastAPI answers as for any route (400)
                return await general(request)
            try:
                data = AppointmentCreate.model_validate_json(body)
            except ValidationError:
                return await general(request)  # FastAPI's 422, as for any route
            app: AppState = request.app.state.slotwise
            claims = await optional_claims(request, await bearer(request))
            response: Response = await self.endpoint(
                request=request,
                data=data,
                claims=claims,
                app=app,
                now=await _now(request),
                idempotency_key=None,
            )
            return response

        return handler

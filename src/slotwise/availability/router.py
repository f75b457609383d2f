"""Weekly patterns, date overrides, time off and open slots of a provider.

``provider_router`` is mounted under /providers (and the /tutors and /doctors aliases);
``slots_router`` too, first of all routes (it is the hottest: see main.API_ROUTERS);
``seed_router`` answers other shapes of the same operations at /availability and
/appointments/availability (the forms of the example projects in the seeds).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth.deps import CurrentUser, OptionalUser
from slotwise.availability import ranking as ranking_service
from slotwise.availability import service
from slotwise.availability import slots as slots_service
from slotwise.availability.schemas import (
    OverrideCreate,
    OverrideRead,
    PatternCreate,
    PatternRead,
    PatternUpdate,
    SeedAvailabilityCreate,
    SlotsRead,
    TimeOffCreate,
    TimeOffRead,
    TimeRangeBody,
)
from slotwise.availability.schemas import (
    SlotQuery as SlotQueryParams,
)
from slotwise.availability.search_schemas import SuggestionsRead
from slotwise.availability.stream import clock_from
from slotwise.dates import ApiDate
from slotwise.db import SessionDep
from slotwise.errors import InvalidInput, responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.providers import service as providers_service
from slotwise.providers.deps import ManagedProvider, ProviderRef, ViewedProvider
from slotwise.scheduling import OverrideKind
from slotwise.scheduling import ranking as scheduling_ranking
from slotwise.state import AppState, NowDep, StateDep
from slotwise.users.models import Role

provider_router = APIRouter()
slots_router = APIRouter()
seed_router = APIRouter()

FromDate = Annotated[ApiDate | None, Query(alias="from", description="First local date.")]
ToDate = Annotated[ApiDate | None, Query(alias="to", description="Last local date (inclusive).")]


SlotQuery = Annotated[SlotQueryParams, Query()]
_SLOT_ERRORS = responses(404, 422)


async def _listing(app: StateDep, ref: str, query: SlotQueryParams, now: NowDep) -> Response:
    """Open slots as a JSON response, from the worker's cache when it is current (the hot
    path: the body is assembled from each slot's JSON, computed when the schedule was read)."""
    return Response(await app.slots.body(ref, query, now), media_type="application/json")


# -- query-string forms that live under the provider prefix ------------------------------


@provider_router.get(
    "/availability",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots by query string (?provider_id=&date=)",
    description="The listing of `GET /providers/{ref}/slots`, with the provider named in the "
    "query: `provider_id`, or its aliases `tutor_id` and `doctor_id`.",
)
async def slots_by_query(
    app: StateDep,
    query: SlotQuery,
    now: NowDep,
    provider_id: Annotated[uuid.UUID | None, Query(description="Provider id.")] = None,
    tutor_id: Annotated[uuid.UUID | None, Query(description="Alias of provider_id.")] = None,
    doctor_id: Annotated[uuid.UUID | None, Query(description="Alias of provider_id.")] = None,
) -> Response:
    ref = provider_id or tutor_id or doctor_id
    if ref is None:
        raise slots_service.ProviderRequired()
    return await _listing(app, str(ref), query, now)


@provider_router.post(
    "/availability",
    status_code=status.HTTP_201_CREATED,
    response_model=PatternRead,
    responses=responses(401, 403, 404, 409),
    summary="Add a weekly pattern to your own profile",
    description="`POST /providers/{ref}/availability` for the signed-in provider's own profile.",
)
@needs(Scope.MANAGE)
async def add_my_pattern(
    data: PatternCreate, user: CurrentUser, session: SessionDep, now: NowDep
) -> PatternRead:
    provider = await providers_service.get_own(session, user=user)
    return PatternRead.model_validate(
        await service.add_pattern(session, provider=provider, data=data, now=now)
    )


# -- weekly patterns -----------------------------------------------------------------------


@provider_router.get(
    "/{ref}/availability",
    response_model=list[PatternRead],
    responses=responses(401, 404),
    summary="Weekly patterns (active ones publicly; all for the provider or an admin)",
)
async def list_patterns(
    provider: ViewedProvider, user: OptionalUser, session: SessionDep
) -> list[PatternRead]:
    include_inactive = providers_service.can_manage(user, provider)
    rows = await service.list_patterns(
        session, provider=provider, include_inactive=include_inactive
    )
    return [PatternRead.model_validate(row) for row in rows]


@provider_router.post(
    "/{ref}/availability",
    status_code=status.HTTP_201_CREATED,
    response_model=PatternRead,
    responses=responses(401, 403, 404, 409),
    summary="Add a weekly pattern",
)
@needs(Scope.MANAGE)
async def add_pattern(
    data: PatternCreate, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> PatternRead:
    return PatternRead.model_validate(
        await service.add_pattern(session, provider=provider, data=data, now=now)
    )


@provider_router.put(
    "/{ref}/availability/{pattern_id}",
    response_model=PatternRead,
    responses=responses(401, 403, 404, 409),
    summary="Change a weekly pattern",
)
@provider_router.patch(
    "/{ref}/availability/{pattern_id}",
    response_model=PatternRead,
    responses=responses(401, 403, 404, 409),
    summary="Change a weekly pattern",
)
@needs(Scope.MANAGE)
async def update_pattern(
    pattern_id: uuid.UUID,
    data: PatternUpdate,
    provider: ManagedProvider,
    session: SessionDep,
    now: NowDep,
) -> PatternRead:
    row = await service.update_pattern(
        session, provider=provider, pattern_id=pattern_id, data=data, now=now
    )
    return PatternRead.model_validate(row)


@provider_router.delete(
    "/{ref}/availability/{pattern_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Remove a weekly pattern",
)
@needs(Scope.MANAGE)
async def delete_pattern(
    pattern_id: uuid.UUID, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> None:
    await service.delete_pattern(session, provider=provider, pattern_id=pattern_id, now=now)


# -- date overrides and time off -----------------------------------------------------------


@provider_router.get(
    "/{ref}/date-overrides",
    response_model=list[OverrideRead],
    responses=responses(401, 404),
    summary="Date-specific hours (replace, add, unavailable)",
)
async def list_overrides(
    provider: ViewedProvider,
    user: OptionalUser,
    session: SessionDep,
    first: FromDate = None,
    last: ToDate = None,
) -> list[OverrideRead]:
    rows = await service.list_overrides(session, provider=provider, first=first, last=last)
    private = providers_service.can_manage(user, provider)
    return [service.override_read(row, with_note=private) for row in rows]


@provider_router.post(
    "/{ref}/date-overrides",
    status_code=status.HTTP_201_CREATED,
    response_model=OverrideRead,
    responses=responses(401, 403, 404),
    summary="Replace, add to, or clear one date's hours",
)
@needs(Scope.MANAGE)
async def add_override(
    data: OverrideCreate, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> OverrideRead:
    row = await service.add_override(session, provider=provider, data=data, now=now)
    return service.override_read(row)


@provider_router.delete(
    "/{ref}/date-overrides/{override_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Remove a date override",
)
@needs(Scope.MANAGE)
async def delete_override(
    override_id: uuid.UUID, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> None:
    await service.delete_override(session, provider=provider, override_id=override_id, now=now)


@provider_router.get(
    "/{ref}/time-off",
    response_model=list[TimeOffRead],
    responses=responses(401, 404),
    summary="Days off (holidays, leave)",
)
async def list_time_off(
    provider: ViewedProvider,
    user: OptionalUser,
    session: SessionDep,
    first: FromDate = None,
    last: ToDate = None,
) -> list[TimeOffRead]:
    rows = await service.list_time_off(session, provider=provider, first=first, last=last)
    private = providers_service.can_manage(user, provider)
    return [
        TimeOffRead.model_validate(row).model_copy(update={} if private else {"reason": None})
        for row in rows
    ]


@provider_router.post(
    "/{ref}/time-off",
    status_code=status.HTTP_201_CREATED,
    response_model=TimeOffRead,
    responses=responses(401, 403, 404),
    summary="Take whole days off",
)
@needs(Scope.MANAGE)
async def add_time_off(
    data: TimeOffCreate, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> TimeOffRead:
    row = await service.add_time_off(session, provider=provider, data=data, now=now)
    return TimeOffRead.model_validate(row)


@provider_router.delete(
    "/{ref}/time-off/{time_off_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
    summary="Remove time off",
)
@needs(Scope.MANAGE)
async def delete_time_off(
    time_off_id: uuid.UUID, provider: ManagedProvider, session: SessionDep, now: NowDep
) -> None:
    await service.delete_time_off(session, provider=provider, time_off_id=time_off_id, now=now)


# -- slots ------------------------------------------------------------------------------------


@slots_router.get(
    "/me/slots",
    response_model=SlotsRead,
    responses=responses(401, 403, 404, 422),
    summary="Open slots of your own profile (as clients see them)",
)
async def list_my_slots(
    user: CurrentUser, session: SessionDep, app: StateDep, query: SlotQuery, now: NowDep
) -> Response:
    provider = await providers_service.get_own(session, user=user)
    body = await app.slots.body_for(session, provider, query, now)
    return Response(body, media_type="application/json")


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters for the fields of `model`, as FastAPI writes them."""
    schema = model.model_json_schema(by_alias=True)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": field,
            "description": field.get("description"),
        }
        for name, field in schema["properties"].items()
    ]


def _read_query(request: Request) -> SlotQueryParams:
    """The slot query, validated in one pass, with the errors FastAPI would give (the
    hottest route skips FastAPI's per-parameter resolution: about a fifth of its time)."""
    try:
        return SlotQueryParams.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("query", *item["loc"])} for item in error.errors()]
        ) from None


@slots_router.get(
    "/{ref}/slots",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots for a date or a window of up to 62 days",
    openapi_extra={"parameters": _query_parameters(SlotQueryParams)},
)
async def list_slots(request: Request, ref: ProviderRef, now: NowDep) -> Response:
    app: AppState = request.app.state.slotwise
    return await _listing(app, ref, _read_query(request), now)


@slots_router.get(
    "/{ref}/slots/suggestions",
    response_model=SuggestionsRead,
    responses=_SLOT_ERRORS,
    summary="The best few open slots, each with a score and the reasons for it",
    description="The listing's own slots (same query as `GET /providers/{ref}/slots`), "
    "ordered by the ranking rules (docs/api.md, Suggestions): next to the provider's "
    "bookings, the signed-in client's usual days and hours, sooner, and away from times "
    "the client missed; or by the learned model, when one is loaded (`ranked_by`).",
)
async def suggest_slots(
    ref: ProviderRef,
    query: SlotQuery,
    user: OptionalUser,
    session: SessionDep,
    app: StateDep,
    now: NowDep,
    limit: Annotated[int, Query(ge=1, le=20, description="How many.")] = 5,
) -> Response:
    history = (
        await app.client_history(session, user.email.lower(), now)
        if user is not None
        else scheduling_ranking.History()
    )
    body = await ranking_service.suggestions(
        app.slots, ref=ref, query=query, history=history, ranker=app.ranker, limit=limit, now=now
    )
    return Response(body, media_type="application/json")


# One Server-Sent Event as a client's parser reads it (the fields of its lines).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["slots", "gone"]},
        "data": {"type": "string", "description": "JSON: the listing, or the error body"},
        "id": {"type": "string", "description": "The listing's digest (`slots` only)"},
        "retry": {"type": "integer"},
    },
    "required": ["event", "data"],
}


@slots_router.get(
    "/{ref}/slots/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
            "description": "Server-Sent Events. `event: slots`: the listing, as `GET "
            "/providers/{ref}/slots` answers it, with its digest as the `id`; sent first and "
            "then each time the listing changes. `event: gone`: the provider (or the service) "
            "can no longer be listed, with the error body; the stream ends. A comment line "
            "every `SLOTWISE_SLOT_STREAM_PING_SECONDS` keeps the connection alive.",
        },
        **responses(404, 422, 503),
    },
    summary="Live slots: the listing, then again each time it changes (Server-Sent Events)",
    description="Same query as `GET /providers/{ref}/slots`. A client that reconnects with "
    "`Last-Event-ID` (browsers' `EventSource` does) gets the listing only if it changed "
    "since that event: every event is the whole listing, so nothing else can be missed. "
    "503 `too_many_streams` when the worker has `SLOTWISE_SLOT_STREAMS_MAX` open.",
    openapi_extra={"parameters": _query_parameters(SlotQueryParams)},
)
async def stream_slots(
    request: Request,
    ref: ProviderRef,
    now: NowDep,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventSourceResponse:
    app: AppState = request.app.state.slotwise
    query = _read_query(request)
    streams = app.streams
    first = await streams.first(ref, query, now)  # errors before the stream starts
    events = streams.events(
        ref,
        query,
        first,
        clock=clock_from(now, asyncio.get_running_loop()),
        last_event_id=last_event_id,
    )
    return EventSourceResponse(
        (
            ServerSentEvent(event.data, event=event.event, id=event.id or None)
            async for event in events
        ),
        ping=app.settings.slot_stream_ping_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- availability and slots at the top level (provider named in the body or query) ---------


@seed_router.post(
    "/availability",
    status_code=status.HTTP_201_CREATED,
    response_model=PatternRead | OverrideRead,
    include_in_schema=False,
)
@seed_router.post(
    "/availability/",
    status_code=status.HTTP_201_CREATED,
    response_model=PatternRead | OverrideRead,
    responses=responses(401, 403, 404, 409),
    summary="Add a weekly pattern or one date's extra hours, for yourself or for staff_id",
    description="With `is_recurring` a weekly pattern (as `POST /providers/{ref}/availability`), "
    "otherwise hours added to `specific_date` (a date override of kind `add`). Admins name the "
    "provider with `staff_id` (provider id or the provider's user id). Also answers without "
    "the trailing slash.",
)
@needs(Scope.MANAGE)
async def seed_add_availability(
    data: SeedAvailabilityCreate, user: CurrentUser, session: SessionDep, now: NowDep
) -> PatternRead | OverrideRead:
    if data.staff_id is None and user.role is Role.ADMIN:
        raise InvalidInput("Admins name the provider with staff_id.")
    ref = str(data.staff_id) if data.staff_id else providers_service.MY_PROFILE
    provider = await providers_service.get_managed(session, user=user, ref=ref)
    if not data.is_recurring:
        assert data.specific_date is not None
        override = OverrideCreate(
            date=data.specific_date,
            kind=OverrideKind.ADD,
            ranges=[TimeRangeBody(start_time=data.start_time, end_time=data.end_time)],
        )
        row = await service.add_override(session, provider=provider, data=override, now=now)
        return service.override_read(row)
    assert data.day_of_week is not None
    pattern = PatternCreate(
        day_of_week=data.day_of_week, start_time=data.start_time, end_time=data.end_time
    )
    return PatternRead.model_validate(
        await service.add_pattern(session, provider=provider, data=pattern, now=now)
    )


@seed_router.get("/availability", response_model=Page[PatternRead], include_in_schema=False)
@seed_router.get(
    "/availability/",
    response_model=Page[PatternRead],
    responses=responses(404, 422),
    summary="Active weekly patterns of bookable providers, or of staff_id",
    description="A page of patterns across providers; also answers without the trailing slash.",
)
async def seed_list_availability(
    session: SessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    staff_id: Annotated[
        uuid.UUID | None, Query(description="Only this provider (provider id or user id).")
    ] = None,
) -> Page[PatternRead]:
    provider = None
    if staff_id is not None:
        provider = await providers_service.get_public(session, ref=str(staff_id))
    rows, total = await service.list_public_patterns(
        session, provider=provider, limit=page.limit, offset=page.offset
    )
    return Page[PatternRead](
        items=[PatternRead.model_validate(row) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@seed_router.get(
    "/availability/slots",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots by query string (?staff_id=&date=)",
    description="The listing of `GET /providers/{ref}/slots`, with the provider named by "
    "`staff_id` (provider id or the provider's user id).",
)
async def seed_slots(
    app: StateDep,
    query: SlotQuery,
    now: NowDep,
    staff_id: Annotated[uuid.UUID, Query(description="Provider id or user id.")],
) -> Response:
    return await _listing(app, str(staff_id), query, now)


@seed_router.get(
    "/appointments/availability",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots under /appointments (?provider_id=&date=)",
    description="The listing of `GET /providers/{ref}/slots`, with the provider named by "
    "`provider_id` (provider id or the provider's user id).",
)
async def seed_appointment_slots(
    app: StateDep,
    query: SlotQuery,
    now: NowDep,
    provider_id: Annotated[uuid.UUID, Query(description="Provider id or user id.")],
) -> Response:
    return await _listing(app, str(provider_id), query, now)

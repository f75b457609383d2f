"""Weekly patterns, date overrides, time off and open slots of a provider.

``provider_router`` is mounted under /providers (and the /tutors and /doctors aliases);
``seed_router`` answers the seeds' own forms at /availability and /appointments/availability.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response, status

from slotwise.auth.deps import CurrentUser, OptionalUser
from slotwise.availability import service
from slotwise.availability import slots as slots_service
from slotwise.availability.schemas import (
    OverrideCreate,
    OverrideRead,
    PatternCreate,
    PatternRead,
    PatternUpdate,
    SeedAvailabilityCreate,
    SlotRead,
    SlotsRead,
    TimeOffCreate,
    TimeOffRead,
    TimeRangeBody,
)
from slotwise.db import SessionDep
from slotwise.errors import InvalidInput, responses
from slotwise.providers import service as providers_service
from slotwise.providers.deps import ManagedProvider, ViewedProvider
from slotwise.providers.models import Provider
from slotwise.scheduling import OverrideKind
from slotwise.state import NowDep
from slotwise.timezones import TimeZoneName
from slotwise.users.models import Role

provider_router = APIRouter()
seed_router = APIRouter()

FromDate = Annotated[date | None, Query(alias="from", description="First local date.")]
ToDate = Annotated[date | None, Query(alias="to", description="Last local date (inclusive).")]


@dataclass(frozen=True, slots=True)
class SlotParams:
    """The query of a slot listing: one date or a window, a service, the client's zone."""

    on_date: date | None
    first: date | None
    last: date | None
    service_id: uuid.UUID | None
    tz: str | None
    slot_duration: int | None


async def slot_params(
    on_date: Annotated[date | None, Query(alias="date", description="One local date.")] = None,
    first: FromDate = None,
    last: ToDate = None,
    service: Annotated[uuid.UUID | None, Query(description="A service id.")] = None,
    tz: Annotated[TimeZoneName | None, Query(description="Also give slots in this zone.")] = None,
    slot_duration: Annotated[
        int | None, Query(ge=5, le=720, description="Minutes, instead of the default session.")
    ] = None,
) -> SlotParams:
    return SlotParams(on_date, first, last, service, tz, slot_duration)


SlotQuery = Annotated[SlotParams, Depends(slot_params)]
_SLOT_ERRORS = responses(404, 422)


async def _slots(
    session: SessionDep, provider: Provider, query: SlotParams, now: NowDep
) -> Response:
    """Open slots as a JSON response, built without re-validation (the hot path: a month
    can hold hundreds of slots, every field of which this function computes itself)."""
    first, last = slots_service.window(query.on_date, query.first, query.last)
    offered = None
    if query.service_id is not None:
        offered = await providers_service.get_service(
            session, provider=provider, service_id=query.service_id, active_only=True
        )
    found = await slots_service.open_slots(
        session,
        provider=provider,
        start_date=first,
        end_date=last,
        service=offered,
        duration_minutes=query.slot_duration,
        now=now,
    )
    zone = ZoneInfo(provider.timezone)
    client_zone = ZoneInfo(query.tz) if query.tz else None
    spec = slots_service.service_spec(provider, offered, query.slot_duration)
    items = []
    for slot in found:
        local_start = slot.start_at.astimezone(zone)
        items.append(
            SlotRead.model_construct(
                start_at=local_start,
                end_at=slot.end_at.astimezone(zone),
                date=local_start.date(),
                client_start_at=slot.start_at.astimezone(client_zone) if client_zone else None,
                client_end_at=slot.end_at.astimezone(client_zone) if client_zone else None,
            )
        )
    body = SlotsRead.model_construct(
        provider_id=provider.id,
        public_handle=provider.public_handle,
        timezone=provider.timezone,
        client_timezone=query.tz,
        service_id=offered.id if offered else None,
        duration_minutes=int(spec.duration.total_seconds() // 60),
        from_date=first,
        to_date=last,
        slots=items,
    )
    return Response(body.model_dump_json(), media_type="application/json")


# -- seed forms that live under the provider prefix --------------------------------------


@provider_router.get(
    "/availability",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots by query (seed 000: /tutors/availability?tutor_id=&date=)",
)
async def slots_by_query(
    session: SessionDep,
    query: SlotQuery,
    now: NowDep,
    provider_id: Annotated[uuid.UUID | None, Query(description="Provider id.")] = None,
    tutor_id: Annotated[uuid.UUID | None, Query(description="Seed 000's name.")] = None,
    doctor_id: Annotated[uuid.UUID | None, Query(description="Seed 002's name.")] = None,
) -> Response:
    ref = provider_id or tutor_id or doctor_id
    if ref is None:
        raise slots_service.ProviderRequired()
    provider = await providers_service.get_public(session, ref=str(ref))
    return await _slots(session, provider, query, now)


@provider_router.post(
    "/availability",
    status_code=status.HTTP_201_CREATED,
    response_model=PatternRead,
    responses=responses(401, 403, 404, 409),
    summary="Add a weekly pattern to your own profile (seed 002: POST /doctors/availability)",
)
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
async def delete_pattern(
    pattern_id: uuid.UUID, provider: ManagedProvider, session: SessionDep
) -> None:
    await service.delete_pattern(session, provider=provider, pattern_id=pattern_id)


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
async def delete_override(
    override_id: uuid.UUID, provider: ManagedProvider, session: SessionDep
) -> None:
    await service.delete_override(session, provider=provider, override_id=override_id)


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
async def delete_time_off(
    time_off_id: uuid.UUID, provider: ManagedProvider, session: SessionDep
) -> None:
    await service.delete_time_off(session, provider=provider, time_off_id=time_off_id)


# -- slots ------------------------------------------------------------------------------------


@provider_router.get(
    "/{ref}/slots",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots for a date or a window of up to 62 days",
)
async def list_slots(
    provider: ViewedProvider, session: SessionDep, query: SlotQuery, now: NowDep
) -> Response:
    return await _slots(session, provider, query, now)


# -- seed 003 and seed 004 forms -----------------------------------------------------------


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
    summary="Add availability for yourself or, as an admin, for staff_id (seed 003)",
)
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


@seed_router.get("/availability", response_model=list[PatternRead], include_in_schema=False)
@seed_router.get(
    "/availability/",
    response_model=list[PatternRead],
    responses=responses(404),
    summary="Active weekly patterns of a provider (seed 003)",
)
async def seed_list_availability(
    session: SessionDep,
    staff_id: Annotated[uuid.UUID, Query(description="Provider id or user id.")],
) -> list[PatternRead]:
    provider = await providers_service.get_public(session, ref=str(staff_id))
    rows = await service.list_patterns(session, provider=provider, include_inactive=False)
    return [PatternRead.model_validate(row) for row in rows]


@seed_router.get(
    "/availability/slots",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots (seed 003: ?staff_id=&date=&slot_duration=)",
)
async def seed_slots(
    session: SessionDep,
    query: SlotQuery,
    now: NowDep,
    staff_id: Annotated[uuid.UUID, Query(description="Provider id or user id.")],
) -> Response:
    provider = await providers_service.get_public(session, ref=str(staff_id))
    return await _slots(session, provider, query, now)


@seed_router.get(
    "/appointments/availability",
    response_model=SlotsRead,
    responses=_SLOT_ERRORS,
    summary="Open slots (seed 004: ?provider_id=&date=)",
)
async def seed_appointment_slots(
    session: SessionDep,
    query: SlotQuery,
    now: NowDep,
    provider_id: Annotated[uuid.UUID, Query(description="Provider id or user id.")],
) -> Response:
    provider = await providers_service.get_public(session, ref=str(provider_id))
    return await _slots(session, provider, query, now)

"""iCalendar downloads (every appointment of yours, or one) and the per-user subscription feed."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel, Field

from slotwise.apikeys.scopes import session_only
from slotwise.auth.deps import CurrentUser
from slotwise.calendars import service
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.shared import NowDep, SharedDep
from slotwise.text import Text

router = APIRouter()


async def booked_appointments(request: Request) -> service.Appointments:
    """What booking gives calendars, as the app factory wired it (``state.AppState``)."""
    appointments: service.Appointments = request.app.state.slotwise.calendar_appointments
    return appointments


AppointmentsDep = Annotated[service.Appointments, Depends(booked_appointments)]

CALENDAR = "text/calendar; charset=utf-8"
_ICS = {"content": {"text/calendar": {}}, "description": "An RFC 5545 calendar"}


def _calendar(text: str, *, filename: str | None = None) -> Response:
    headers = {"Cache-Control": "private, max-age=300"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(content=text, media_type=CALENDAR, headers=headers)


class CalendarFeedRead(BaseModel):
    url: str = Field(description="The secret feed URL; shown once. Subscribe to it in a calendar.")


@router.get(
    "/appointments/export-all.ics",
    response_class=Response,
    responses={200: _ICS, **responses(401)},
    summary="All your appointments as one iCalendar file",
)
async def export_all(
    user: CurrentUser, session: SessionDep, appointments: AppointmentsDep, now: NowDep
) -> Response:
    text = await service.export_all(session, appointments, user=user, now=now)
    return _calendar(text, filename="appointments.ics")


@router.get(
    "/appointments/{appointment_id}/export.ics",
    response_class=Response,
    responses={200: _ICS, **responses(401, 404)},
    summary="One appointment as an iCalendar file",
)
async def export_one(
    appointment_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    appointments: AppointmentsDep,
    now: NowDep,
) -> Response:
    text = await service.export_one(
        session, appointments, user=user, appointment_id=appointment_id, now=now
    )
    return _calendar(text, filename=f"appointment-{appointment_id}.ics")


@router.post(
    "/users/me/calendar-feed",
    status_code=status.HTTP_201_CREATED,
    response_model=CalendarFeedRead,
    responses=responses(401),
    summary="Create or rotate your secret calendar feed URL",
)
@session_only
async def rotate_feed(
    request: Request, user: CurrentUser, session: SessionDep, shared: SharedDep, now: NowDep
) -> CalendarFeedRead:
    token = await service.rotate_feed(session, user=user, now=now)
    path = request.app.url_path_for("calendar_feed", token=token)
    return CalendarFeedRead(url=shared.settings.public_base_url.rstrip("/") + str(path))


@router.delete(
    "/users/me/calendar-feed",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401),
    summary="Revoke your calendar feed URL",
)
@session_only
async def revoke_feed(user: CurrentUser, session: SessionDep) -> None:
    await service.revoke_feed(session, user=user)


@router.get(
    "/calendar/feeds/{token}.ics",
    name="calendar_feed",
    response_class=Response,
    responses={200: _ICS, **responses(404)},
    summary="A calendar feed, by its secret token (no login; calendars poll it)",
)
async def calendar_feed(
    token: Annotated[Text, Path(min_length=16, max_length=128)],
    session: SessionDep,
    appointments: AppointmentsDep,
    now: NowDep,
) -> Response:
    return _calendar(await service.feed(session, appointments, token=token, now=now))

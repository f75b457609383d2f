"""The waitlist: join a full slot's or session's line, read it, leave it; the provider's
view of who waits (``booking.waitlist``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import Response

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth import callers
from slotwise.auth.deps import CurrentUser, OptionalClaims
from slotwise.booking import waitlist
from slotwise.booking.errors import (
    AlreadyWaiting,
    SlotAvailable,
    WaitlistEntryNotFound,
    WaitlistLimitReached,
)
from slotwise.booking.models import WaitlistEntry, WaitlistStatus
from slotwise.booking.router import booking_caller
from slotwise.booking.waitlist_schemas import (
    WaitlistCreate,
    WaitlistEntryRead,
    WaitlistJoined,
    WaitlistWaiter,
)
from slotwise.dates import ApiAwareDatetime
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.pagination import Page, PageParams, page_params
from slotwise.providers import service as providers_service
from slotwise.state import AppState, NowDep
from slotwise.text import Text

router = APIRouter()
provider_router = APIRouter()

EntryId = Annotated[uuid.UUID, Path(description="The waitlist entry's id.")]
EntryToken = Annotated[
    Text, Path(min_length=16, max_length=128, description="A guest's waitlist manage token.")
]
PageDep = Annotated[PageParams, Depends(page_params)]

_JOIN = f"""Join the line for a slot or group session that is taken. When its time frees (a
cancellation, a reschedule, a seat or a hold released), the first in line gets it:
`"mode": "book"` books it for them at once (the booking's usual messages and
`booking.created`); `"mode": "offer"` (the default) holds it for them and emails a hold token
(book with `POST /appointments` and `"hold_token"`) for `SLOTWISE_WAITLIST_OFFER_MINUTES`
(30 by default), after which it passes to the next in line. A waiter whose own rules refuse
the place (a conflict, a limit) is skipped. Signed in, or as a guest with `guest_details`
(a manage token is answered once; guests are rate limited per address,
`SLOTWISE_RATE_LIMIT_WAITLIST_IP`).

Refusals: 409 `{SlotAvailable.code}` (the time is free: book it instead), 409
`{AlreadyWaiting.code}`, 409 `{WaitlistLimitReached.code}` (`details.max_entries`:
`SLOTWISE_WAITLIST_MAX_PER_CLIENT` lines with one provider), and those of a booking's
decision (`provider_not_found`, `service_not_found`, `too_soon`, `too_far`,
`outside_availability`, `client_conflict`, `client_blocked`, …)."""


def _read(entry: WaitlistEntry, position: int | None) -> WaitlistEntryRead:
    zone = ZoneInfo(entry.timezone)

    def local(at: datetime | None) -> datetime | None:
        return at.astimezone(zone) if at is not None else None

    booked = entry.status == WaitlistStatus.BOOKED.value
    return WaitlistEntryRead.model_validate(
        {
            "id": entry.id,
            "provider_id": entry.provider_id,
            "service_id": entry.service_id,
            "start_at": local(entry.start_at),
            "end_at": local(entry.end_at),
            "timezone": entry.timezone,
            "mode": entry.mode,
            "status": entry.status,
            "position": position,
            "offer_expires_at": local(entry.offer_until)
            if entry.status == WaitlistStatus.OFFERED.value
            else None,
            "appointment_id": entry.appointment_id if booked else None,
            "created_at": local(entry.created_at),
        }
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WaitlistJoined,
    responses=responses(404, 409, 422, 429),
    summary="Join the waitlist of a full slot or session",
    description=_JOIN,
)
@needs(Scope.BOOK)
async def join_waitlist(
    request: Request, data: WaitlistCreate, claims: OptionalClaims, session: SessionDep, now: NowDep
) -> WaitlistJoined:
    app: AppState = request.app.state.slotwise
    claims = await booking_caller(
        app,
        request,
        claims,
        for_guest=data.guest_details is not None,
        guest_limit=(app.settings.rate_limit_waitlist_ip, "waitlist-ip"),
    )
    user = await callers.user_for_claims(session, app.redis, claims) if claims else None
    joined = await waitlist.join(
        session,
        kept_terms=app.terms,
        user=user,
        data=data,
        now=now,
        policy=waitlist.WaitlistPolicy.from_settings(app.settings),
    )
    read = _read(joined.entry, joined.position)
    return WaitlistJoined(**read.model_dump(), manage_token=joined.manage_token)


_NOT_FOUND = f"404 `{WaitlistEntryNotFound.code}` for an entry that is not yours."


@router.get(
    "/by-token/{token}",
    response_model=WaitlistEntryRead,
    responses=responses(404),
    summary="A guest's waitlist entry, by its manage token",
    description=_NOT_FOUND,
)
async def read_guest_entry(token: EntryToken, session: SessionDep) -> WaitlistEntryRead:
    entry = await waitlist.get_by_token(session, token=token)
    return _read(entry, await waitlist.position(session, entry))


@router.delete(
    "/by-token/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(404, 409),
    summary="A guest leaves a waitlist (an offer they hold passes to the next in line)",
    description=_NOT_FOUND + " 409 `invalid_transition` once out of line.",
)
async def leave_as_guest(token: EntryToken, session: SessionDep, now: NowDep) -> Response:
    entry = await waitlist.get_by_token(session, token=token)
    await waitlist.leave(session, entry, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{entry_id}",
    response_model=WaitlistEntryRead,
    responses=responses(401, 404),
    summary="Your waitlist entry: its status and place in line",
    description=_NOT_FOUND,
)
async def read_entry(
    entry_id: EntryId, user: CurrentUser, session: SessionDep
) -> WaitlistEntryRead:
    entry = await waitlist.get_own(session, user=user, entry_id=entry_id)
    return _read(entry, await waitlist.position(session, entry))


@router.delete(
    "/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(401, 404, 409),
    summary="Leave a waitlist (an offer you hold passes to the next in line)",
    description=_NOT_FOUND + " 409 `invalid_transition` once out of line.",
)
@needs(Scope.BOOK)
async def leave(entry_id: EntryId, user: CurrentUser, session: SessionDep, now: NowDep) -> Response:
    entry = await waitlist.get_own(session, user=user, entry_id=entry_id)
    await waitlist.leave(session, entry, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@provider_router.get(
    "/me/waitlist",
    response_model=Page[WaitlistWaiter],
    responses=responses(401, 403, 404),
    summary="Who waits for your times: entries in line, by start and place",
)
async def provider_waitlist(
    user: CurrentUser,
    session: SessionDep,
    now: NowDep,
    page: PageDep,
    start_from: Annotated[
        ApiAwareDatetime | None,
        Query(alias="from", description="Starts at or after (with offset); default: now."),
    ] = None,
    start_to: Annotated[
        ApiAwareDatetime | None, Query(alias="to", description="Starts before (with offset).")
    ] = None,
) -> Page[WaitlistWaiter]:
    provider = await providers_service.get_own(session, user=user)
    rows, total = await waitlist.provider_page(
        session,
        provider_id=provider.id,
        start_from=start_from or now,
        start_to=start_to,
        limit=page.limit,
        offset=page.offset,
    )
    items = [
        WaitlistWaiter(**_read(entry, position).model_dump(), name=name, email=email)
        for entry, position, name, email in rows
    ]
    return Page[WaitlistWaiter](items=items, total=total, limit=page.limit, offset=page.offset)

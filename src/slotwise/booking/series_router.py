"""Recurring series: booking one (signed in or as a guest), reading it, cutting it short,
and the provider's confirmation or decline of it as one. One occurrence is managed by the
appointment routes."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth import callers
from slotwise.auth.deps import CurrentUser, OptionalClaims
from slotwise.booking import idempotency
from slotwise.booking import series as series_service
from slotwise.booking.models import Status
from slotwise.booking.present import (
    series_created,
    series_read,
    series_verified_page,
    verification_page,
)
from slotwise.booking.router import (
    REFUSALS,
    IdempotencyKeyHeader,
    Reminders,
    booking_caller,
    synced_for,
)
from slotwise.booking.schemas import (
    SeriesCancel,
    SeriesCreate,
    SeriesCreated,
    SeriesRead,
    SeriesStatusChange,
)
from slotwise.db import READ_METHODS, SessionDep
from slotwise.errors import responses
from slotwise.state import AppState, NowDep
from slotwise.text import Text

router = APIRouter()
guest_router = APIRouter()

SeriesId = Annotated[uuid.UUID, Path(description="Series id.")]
Token = Annotated[
    Text, Path(min_length=16, max_length=128, description="The series' manage token.")
]
VerifyToken = Annotated[
    Text,
    Path(min_length=16, max_length=128, description="The token of the series' mailed link."),
]

SERIES_REFUSALS = (
    "Every occurrence is decided and judged as a single booking would be, under one set of "
    "locks, in one transaction.\n\n"
    "- 409 `series_unavailable`: some occurrences cannot be booked (all or nothing), or none "
    "can (skip); `details.occurrences` lists each one's `index`, `start_at`, `code` (one of "
    "the booking refusals below) and `details`.\n"
    "- 422 `series_too_long`: more than 52 occurrences.\n"
    "- A guest's series with a provider that verifies guests' emails is booked with every "
    "occurrence `pending_verification` (held until `hold_until`), kept by the one link "
    "mailed to the guest (`POST /bookings/series/verify/{token}`).\n"
    "- A refusal no occurrence escapes (`provider_not_found`, `service_not_found`, "
    "`provider_not_accepting`, `cannot_book_yourself`, `client_blocked`, `provider_changed`) "
    "is answered as for one booking.\n\n" + REFUSALS
)


@router.post(
    "/series",
    status_code=status.HTTP_201_CREATED,
    response_model=SeriesCreated,
    responses=responses(401, 404, 409, 422, 429),
    summary="Book a recurring series, signed in or as a guest",
    description=SERIES_REFUSALS,
)
@needs(Scope.BOOK)
async def create_series(
    request: Request,
    data: SeriesCreate,
    claims: OptionalClaims,
    now: NowDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    app: AppState = request.app.state.slotwise
    claims = await booking_caller(app, request, claims, for_guest=data.guest_details is not None)
    await synced_for(app, claims, [data.provider_id], now)
    async with app.db.transaction(writes=True) as session:
        user = await callers.user_for_claims(session, app.redis, claims) if claims else None
        claimed = None
        if idempotency_key:  # claimed in the series' transaction, as a single booking's key
            guest = str(data.guest_details.email).lower() if data.guest_details else ""
            found = await idempotency.claim(
                session,
                scope=f"user:{user.id}" if user else f"guest:{guest}",
                key=idempotency_key,
                digest=idempotency.request_hash("series:" + data.model_dump_json()),
                now=now,
            )
            if isinstance(found, idempotency.Replay):
                return await _replay(session, found, mailed=bool(app.settings.series_manage_url))
            claimed = found
        booked = await series_service.book(
            session,
            kept_terms=app.terms,
            user=user,
            data=data,
            now=now,
            guests=app.bookings.guests,
        )
        body = series_created(
            booked.series,
            booked.occurrences,
            [
                (
                    s.index,
                    s.start_at,
                    s.refusal.reason.value,
                    dict(s.refusal.details) or None,
                )
                for s in booked.skipped
            ],
            booked.manage_token,
        )
        if claimed is not None:  # a guest's manage token is never stored in clear
            stored = body.model_copy(update={"manage_token": None}).model_dump_json()
            idempotency.remember(claimed, status=201, body=stored)
    return Response(body.model_dump_json(), status_code=201, media_type="application/json")


async def _replay(
    session: AsyncSession, replay: idempotency.Replay, *, mailed: bool
) -> JSONResponse:
    """The first response again. A guest's manage token is never stored in clear: where the
    application mails guests their series' link (``mailed``), the replay carries none and
    the mailed link keeps working (as a single booking's replay); elsewhere the guest gets a
    fresh token and the first stops working."""
    content = json.loads(replay.body)
    if content.get("guest") is not None and not mailed:
        content["manage_token"] = await series_service.rotate_manage_token(
            session, series_id=uuid.UUID(content["id"])
        )
    return JSONResponse(content, status_code=replay.status, headers={"Idempotent-Replayed": "true"})


async def _acting(
    request: Request, series_id: SeriesId, user: CurrentUser, session: SessionDep
) -> series_service.SeriesAccess:
    return await series_service.for_user(
        session, user=user, series_id=series_id, lock=request.method not in READ_METHODS
    )


async def _acting_as_guest(
    request: Request, token: Token, session: SessionDep
) -> series_service.SeriesAccess:
    return await series_service.for_guest_token(
        session, token=token, lock=request.method not in READ_METHODS
    )


Acting = Annotated[series_service.SeriesAccess, Depends(_acting)]
GuestActing = Annotated[series_service.SeriesAccess, Depends(_acting_as_guest)]


def _read(acting: series_service.SeriesAccess) -> SeriesRead:
    return series_read(acting.series, [found.appointment for found in acting.occurrences])


@router.get(
    "/series/{series_id}",
    response_model=SeriesRead,
    responses=responses(401, 404),
    summary="A series and its occurrences (its client, its provider, or an admin)",
)
async def read_series(acting: Acting) -> SeriesRead:
    return _read(acting)


@router.post(
    "/series/{series_id}/cancel",
    response_model=SeriesRead,
    responses=responses(401, 404, 409),
    summary="Cancel an occurrence and all following, or every upcoming one",
    description="One occurrence alone: `POST /appointments/{appointment_id}/cancel`. Clients "
    "are bound by the cancellation window: with `from_appointment_id`, that occurrence's "
    "(409 `policy_window_closed`); without, the upcoming occurrences inside it are kept.",
)
@needs(Scope.BOOK)
async def cancel_series(
    acting: Acting, data: SeriesCancel, session: SessionDep, now: NowDep
) -> SeriesRead:
    return _read(
        await series_service.cancel_following(
            session,
            acting,
            from_appointment_id=data.from_appointment_id,
            reason=data.reason,
            now=now,
        )
    )


@router.patch(
    "/series/{series_id}/status",
    response_model=SeriesRead,
    responses=responses(401, 403, 404, 409),
    summary="Confirm or decline every pending occurrence (provider or admin)",
)
@needs(Scope.MANAGE)
async def change_series_status(
    acting: Acting,
    data: SeriesStatusChange,
    session: SessionDep,
    reminders: Reminders,
    now: NowDep,
) -> SeriesRead:
    return _read(
        await series_service.set_status(
            session,
            acting,
            to=Status(data.status),
            reason=data.reason,
            reminder_offsets=reminders,
            now=now,
        )
    )


@guest_router.get(
    "/series/verify/{token}",
    response_class=Response,  # not HTMLResponse: errors are documented as JSON, as they are
    responses={200: {"description": "A page with a button", "content": {"text/html": {}}}},
    summary="The page a guest's series verification link opens: a button, which verifies",
)
async def guest_verify_series_page(token: VerifyToken) -> HTMLResponse:
    """Opening the link changes nothing (mail scanners and link previews open links); the
    page's button posts to the same address, which verifies."""
    return HTMLResponse(verification_page("series"))


@guest_router.post(
    "/series/verify/{token}",
    response_model=SeriesRead,
    responses=responses(404, 409),
    summary="A guest verifies their email: every held occurrence of the series is kept",
    description="One link for the whole series (mailed only, never in an answer): each "
    "`pending_verification` occurrence becomes `pending` (the provider confirms bookings) or "
    "`confirmed`, with an `email_verified` history entry, and the series' messages go out. "
    "Posting again answers the series as it is. 409 `verification_expired` once the hold "
    "ended (the occurrences are released); 409 `invalid_transition` when nothing is held any "
    "more (cancelled); 404 `series_not_found` for an unknown token.",
)
async def guest_verify_series(
    request: Request, token: VerifyToken, session: SessionDep, reminders: Reminders, now: NowDep
) -> Response:
    acting = await series_service.verify(session, token=token, reminder_offsets=reminders, now=now)
    read = _read(acting)
    if "text/html" in request.headers.get("accept", ""):  # the page's form, in a browser
        return HTMLResponse(series_verified_page(read))
    return Response(read.model_dump_json(), media_type="application/json")


@guest_router.get(
    "/series/{token}",
    response_model=SeriesRead,
    responses=responses(404),
    summary="A guest's series",
)
async def guest_read_series(acting: GuestActing) -> SeriesRead:
    return _read(acting)


@guest_router.post(
    "/series/{token}/cancel",
    response_model=SeriesRead,
    responses=responses(404, 409),
    summary="A guest cancels an occurrence and all following (same policies as clients)",
)
async def guest_cancel_series(
    acting: GuestActing, data: SeriesCancel, session: SessionDep, now: NowDep
) -> SeriesRead:
    return _read(
        await series_service.cancel_following(
            session,
            acting,
            from_appointment_id=data.from_appointment_id,
            reason=data.reason,
            now=now,
        )
    )

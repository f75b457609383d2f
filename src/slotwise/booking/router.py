"""Appointments: booking, life cycle, reading; guest management by token; no-show records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.apikeys.scopes import Scope, needs
from slotwise.auth import callers
from slotwise.auth.deps import AdminUser, CurrentUser, OptionalClaims, SignedInClaims
from slotwise.auth.tokens import TokenClaims
from slotwise.booking import access as access_rules
from slotwise.booking import create, guests, holds, idempotency, lifecycle, queries, sessions
from slotwise.booking.access import Access
from slotwise.booking.errors import (
    HoldExpired,
    HoldLimitReached,
    HoldMismatch,
    HoldNotFound,
    refused,
)
from slotwise.booking.models import Appointment, Status
from slotwise.booking.present import (
    appointment_read,
    booking_created,
    session_read,
    verification_page,
    verified_page,
)
from slotwise.booking.reschedule import reschedule
from slotwise.booking.schemas import (
    AppointmentCreate,
    AppointmentRead,
    BookingCreated,
    CancelRequest,
    HoldCreate,
    HoldCreated,
    HoldRead,
    NotesUpdate,
    RescheduleRequest,
    SessionRead,
    Standing,
    StandingUpdate,
    StatusChange,
)
from slotwise.dates import ApiAwareDatetime
from slotwise.db import READ_METHODS, SessionDep
from slotwise.errors import responses, status_for
from slotwise.pagination import Page, PageParams, page_params
from slotwise.providers import service as providers_service
from slotwise.ratelimit import client_address
from slotwise.scheduling import Reason, Refusal
from slotwise.shared import SharedDep
from slotwise.state import AppState, NowDep, StateDep
from slotwise.text import MultilineText, Text
from slotwise.users.models import User

router = APIRouter()
# The booking queue's routes (a booking, a signed-in cancellation or reschedule): the
# application tries them early (main.py); tests/service/test_route_order.py checks that no
# route's paths are taken by another.
booking_router = APIRouter()
guest_router = APIRouter()
provider_router = APIRouter()
standings_router = APIRouter()
holds_router = APIRouter()

AppointmentId = Annotated[uuid.UUID, Path(description="Appointment id.")]
Token = Annotated[Text, Path(min_length=16, max_length=128, description="The manage token.")]
PageDep = Annotated[PageParams, Depends(page_params)]


async def _reminder_offsets(shared: SharedDep) -> list[int]:
    """The application's reminders: minutes before a confirmed appointment's start."""
    return shared.settings.reminder_offsets_minutes


Reminders = Annotated[list[int], Depends(_reminder_offsets)]


def _page(items: list[AppointmentRead], total: int, page: PageParams) -> Page[AppointmentRead]:
    return Page[AppointmentRead](items=items, total=total, limit=page.limit, offset=page.offset)


def _refusals() -> str:
    """The booking route's refusals, one per reason the decision or the write can give."""
    lines = ["Refusals, by the error body's `code`:", ""]
    for reason in Reason:
        if reason is Reason.HOLD_LIMIT_REACHED:  # a hold's refusal (POST /holds), not a booking's
            continue
        error = refused(Refusal(reason))
        lines.append(f"- {status_for(error)} `{reason.value}`: {error.detail_message}")
    lines.append("")
    lines.append(
        "`limit_reached` names the limit in `details.limit`: per_day, per_week, per_client."
    )
    lines.append("")
    lines.append("With a `hold_token` (`POST /holds`), also:")
    lines.append("")
    for error in (HoldNotFound(), HoldExpired(), HoldMismatch()):
        lines.append(f"- {status_for(error)} `{error.code}`: {error.detail_message}")
    return "\n".join(lines)


REFUSALS = _refusals()

IdempotencyKeyHeader = Annotated[
    Text | None,
    Header(
        max_length=idempotency.MAX_KEY_LENGTH,
        description="Retry safely: the same key and body replay the first response.",
    ),
]


@booking_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BookingCreated,
    include_in_schema=False,
)  # seeds 002 and 004 post to /appointments, without the slash
@booking_router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=BookingCreated,
    responses=responses(401, 404, 409, 422, 429),
    summary="Book a slot, signed in or as a guest",
    description=REFUSALS,
)
@needs(Scope.BOOK)
async def create_appointment(
    request: Request,
    data: AppointmentCreate,
    claims: OptionalClaims,
    now: NowDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    # The state read from the request, not StateDep: one dependency fewer for FastAPI to
    # solve on the busiest write (docs/architecture.md, "The booking pipeline").
    app: AppState = request.app.state.slotwise
    claims = await booking_caller(app, request, claims, for_guest=data.guest_details is not None)
    await synced_for(app, claims, [data.provider_id], now)
    if idempotency_key:
        return await _book_once(app, claims, data, now, key=idempotency_key)
    if data.hold_token is not None:  # a held slot: its hold's row becomes the booking
        async with app.db.transaction(writes=True) as session:
            user = await callers.user_for_claims(session, app.redis, claims) if claims else None
            return _created(await _book(session, app, user, data, now))
    # Decided and written with the bookings that arrive alongside (booking.queue).
    booked = await app.bookings.submit(claims=claims, data=data, now=now)
    return _created(booked)


async def booking_caller(
    app: AppState,
    request: Request,
    claims: TokenClaims | None,
    *,
    for_guest: bool,
    guest_limit: tuple[str, str] | None = None,
) -> TokenClaims | None:
    """Who books: the signed-in caller, or a guest (None). A guest's requests are counted per
    client address (``guest_limit``: the limit and its scope, by default the guest booking
    one); an integrator's booking page books for its guest with its key (``for_guest``: the
    body names the guest), counted against the key's own rate limit, not the address's."""
    if claims is None:
        limit, scope = guest_limit or (app.settings.rate_limit_guest_booking_ip, "guest-booking-ip")
        await app.limiter.hit(limit, scope, client_address(request))
        return None
    if claims.api_key_id is not None and for_guest:
        return None
    return claims


async def _book_once(
    app: AppState, claims: TokenClaims | None, data: AppointmentCreate, now: datetime, *, key: str
) -> Response:
    """A booking with an Idempotency-Key: the key's claim and the booking in one transaction."""
    async with app.db.transaction(writes=True) as session:
        user = await callers.user_for_claims(session, app.redis, claims) if claims else None
        scope = f"user:{user.id}" if user else f"guest:{_guest_email(data)}"
        digest = idempotency.request_hash(data.model_dump_json())
        found = await idempotency.claim(session, scope=scope, key=key, digest=digest, now=now)
        if isinstance(found, idempotency.Replay):
            return await _replay(session, found, mailed=bool(app.settings.guest_manage_url))
        booked = await _book(session, app, user, data, now)
        response = _created(booked)
        stored = booking_created(booked.appointment, None).model_dump_json()
        idempotency.remember(found, status=201, body=stored)
        return response


async def _book(
    session: AsyncSession, app: AppState, user: User | None, data: AppointmentCreate, now: datetime
) -> create.Booked:
    """One booking in the session's transaction: a held slot's, or a new one."""
    book = holds.book_held if data.hold_token is not None else create.book
    return await book(
        session, kept_terms=app.terms, user=user, data=data, now=now, guests=app.bookings.guests
    )


def _created(booked: create.Booked) -> Response:
    body = booking_created(booked.appointment, booked.manage_token)
    # Serialised here, once: FastAPI would validate the model again against response_model.
    return Response(body.model_dump_json(), status_code=201, media_type="application/json")


def _guest_email(data: AppointmentCreate) -> str:
    return str(data.guest_details.email).lower() if data.guest_details else ""


async def _replay(
    session: AsyncSession, replay: idempotency.Replay, *, mailed: bool
) -> JSONResponse:
    """The first response again. A guest's manage token is never stored in clear: where the
    application mails guests their link (``mailed``), the replay carries none and the mailed
    link keeps working; elsewhere the guest gets a fresh token and the first stops working."""
    content = json.loads(replay.body)
    if content.get("guest") is not None and not mailed:
        content["manage_token"] = await create.rotate_manage_token(
            session, appointment_id=uuid.UUID(content["id"])
        )
    return JSONResponse(content, status_code=replay.status, headers={"Idempotent-Replayed": "true"})


@router.get(
    "/me",
    response_model=Page[AppointmentRead],
    responses=responses(401),
    summary="Your appointments, as client and as provider",
)
async def my_appointments(
    user: CurrentUser, session: SessionDep, page: PageDep
) -> Page[AppointmentRead]:
    rows, total = await queries.page_for(
        session,
        user=user,
        statuses=None,
        start_from=None,
        start_to=None,
        provider_id=None,
        limit=page.limit,
        offset=page.offset,
        as_client_and_provider=True,
    )
    return _page([appointment_read(a) for a in rows], total, page)


@router.get("", response_model=Page[AppointmentRead], include_in_schema=False)
@router.get(
    "/",
    response_model=Page[AppointmentRead],
    responses=responses(401),
    summary="Appointments you may see (clients theirs, providers theirs, admins all)",
)
async def list_appointments(
    user: CurrentUser,
    session: SessionDep,
    page: PageDep,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    start_from: Annotated[
        ApiAwareDatetime | None,
        Query(alias="from", description="Starts at or after (with offset)."),
    ] = None,
    start_to: Annotated[
        ApiAwareDatetime | None, Query(alias="to", description="Starts before (with offset).")
    ] = None,
    provider_id: uuid.UUID | None = None,
) -> Page[AppointmentRead]:
    rows, total = await queries.page_for(
        session,
        user=user,
        statuses=status_,
        start_from=start_from,
        start_to=start_to,
        provider_id=provider_id,
        limit=page.limit,
        offset=page.offset,
    )
    return _page([appointment_read(a) for a in rows], total, page)


# -- one appointment, as its client, its provider or an admin (anyone else: 404) -------------


async def _acting(
    request: Request, appointment_id: AppointmentId, user: CurrentUser, session: SessionDep
) -> Access:
    """The appointment in the path and the caller's capacity on it; locked until the
    commit when the request changes it."""
    return await access_rules.for_user(
        session, user=user, appointment_id=appointment_id, lock=_changes(request)
    )


async def _acting_as_guest(request: Request, token: Token, session: SessionDep) -> Access:
    return await access_rules.for_guest_token(session, token=token, lock=_changes(request))


def _changes(request: Request) -> bool:
    return request.method not in READ_METHODS


Acting = Annotated[Access, Depends(_acting)]
GuestActing = Annotated[Access, Depends(_acting_as_guest)]


# Who acts on the appointment moved, found in a session (``lock``: its row locked).
Finds = Callable[[AsyncSession, bool], Awaitable[Access]]


async def _synced_before_move(app: AppState, acting: Finds, now: datetime) -> None:
    """With SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING, before a reschedule's write transaction
    (on SQLite it holds the write lock the sync's own write must take): who acts is found
    first (a caller who may not move the appointment is refused, 401 or 404, and nothing is
    synced), then the calendars of every provider whose row moves (every member's, for a
    collective team booking) synced. The write transaction finds who acts again, with the
    rows locked."""
    if not app.syncs_calendars_first:
        return
    async with app.db.transaction(writes=False) as session:
        providers = await access_rules.providers_moved(session, await acting(session, False))
    await app.calendars_synced([str(provider) for provider in providers], now)


async def synced_for(
    app: AppState, claims: TokenClaims | None, refs: Sequence[str], now: datetime
) -> None:
    """Before a new time of these providers is placed for this caller (a booking, a
    series, a hold, a team's booking): with SLOTWISE_CALENDAR_SYNC_BEFORE_BOOKING, a
    signed-in caller's account checked (a revoked token: 401, and nothing synced; the write
    transaction looks it up again), then the providers' calendars synced
    (``AppState.calendars_synced``, before the write transaction)."""
    if not app.syncs_calendars_first:
        return
    if claims is not None:
        async with app.db.transaction(writes=False) as session:
            await callers.user_for_claims(session, app.redis, claims)
    await app.calendars_synced(refs, now)


@router.get(
    "/{appointment_id}",
    response_model=AppointmentRead,
    responses=responses(401, 404),
    summary="One appointment (its client, its provider, or an admin)",
)
async def read_appointment(acting: Acting) -> AppointmentRead:
    return appointment_read(acting.appointment)


@router.patch(
    "/{appointment_id}",
    response_model=AppointmentRead,
    responses=responses(401, 404),
    summary="Change the notes",
)
@needs(Scope.MANAGE)
async def update_notes(
    acting: Acting, data: NotesUpdate, session: SessionDep, now: NowDep
) -> AppointmentRead:
    updated = await lifecycle.update_notes(session, acting, notes=data.notes, now=now)
    return appointment_read(updated)


@router.patch(
    "/{appointment_id}/status",
    response_model=AppointmentRead,
    responses=responses(401, 403, 404, 409),
    summary="Confirm or decline (or cancel)",
    description='The provider or an admin confirms or declines. `{"status": "cancelled"}` '
    "is the cancel operation (`POST /appointments/{appointment_id}/cancel`): same rules, same "
    "answer.",
)
@needs(Scope.MANAGE)
async def change_status(
    request: Request,
    appointment_id: AppointmentId,
    data: StatusChange,
    claims: SignedInClaims,
    now: NowDep,
) -> AppointmentRead:
    to = Status(data.status)
    if to is Status.CANCELLED:
        return await _cancelled(request, appointment_id, claims, data.reason, now)
    app: AppState = request.app.state.slotwise
    async with app.db.transaction(writes=True) as session:
        acting = await _signed_in_access(app, session, claims, appointment_id, lock=True)
        updated = await lifecycle.set_status(
            session,
            acting,
            to=to,
            reason=data.reason,
            reminder_offsets=app.settings.reminder_offsets_minutes,
            now=now,
        )
        return appointment_read(updated)


@booking_router.post(
    "/{appointment_id}/cancel",
    response_model=AppointmentRead,
    responses=responses(401, 404, 409),
    summary="Cancel; the record is kept",
    description="Nothing is deleted: the appointment stays, `cancelled`, with `cancel_reason`, "
    "and its time is free again. Clients are bound by the provider's cancellation window; the "
    "provider and admins are not.\n\n"
    "Aliases, the same operation: `DELETE /appointments/{appointment_id}` (the reason in "
    "`?reason=`) and `PATCH /appointments/{appointment_id}/status` with "
    '`{"status": "cancelled", "reason"?}`.',
)
@needs(Scope.BOOK)
async def cancel(
    request: Request,
    appointment_id: AppointmentId,
    claims: SignedInClaims,
    now: NowDep,
    data: CancelRequest | None = None,
) -> AppointmentRead:
    reason = data.reason if data else None
    return await _cancelled(request, appointment_id, claims, reason, now)


@router.delete(
    "/{appointment_id}",
    response_model=AppointmentRead,
    responses=responses(401, 404, 409),
    summary="Cancel (alias of POST /appointments/{appointment_id}/cancel)",
    include_in_schema=False,
)
@needs(Scope.BOOK)
async def delete_appointment(
    request: Request,
    appointment_id: AppointmentId,
    claims: SignedInClaims,
    now: NowDep,
    reason: Annotated[MultilineText | None, Query(max_length=500)] = None,
) -> AppointmentRead:
    return await _cancelled(request, appointment_id, claims, reason, now)


async def _cancelled(
    request: Request,
    appointment_id: uuid.UUID,
    claims: TokenClaims,
    reason: str | None,
    now: datetime,
) -> AppointmentRead:
    """A signed-in caller's cancellation, decided and written with the bookings and
    cancellations that arrive alongside (``booking.queue``, ``lifecycle.cancel_each``)."""
    app: AppState = request.app.state.slotwise
    cancelled = await app.bookings.cancel(
        claims=claims, appointment_id=appointment_id, reason=reason, now=now
    )
    return appointment_read(cancelled)


@booking_router.post(
    "/{appointment_id}/reschedule",
    response_model=AppointmentRead,
    responses=responses(401, 404, 409, 422),
    summary="Move to another slot, atomically",
)
@needs(Scope.BOOK)
async def reschedule_appointment(
    request: Request,
    appointment_id: AppointmentId,
    data: RescheduleRequest,
    claims: SignedInClaims,
    now: NowDep,
) -> AppointmentRead:
    """The client, the provider or an admin moves the appointment (a client within the
    provider's cancellation window, to a time the listing offers). A part of a collective
    team booking moves with every other member's part, all or none: each member's terms
    must accept the new time (else that member's refusal)."""
    app: AppState = request.app.state.slotwise
    signed_in = claims

    async def acting(session: AsyncSession, lock: bool) -> Access:
        return await _signed_in_access(app, session, signed_in, appointment_id, lock=lock)

    await _synced_before_move(app, acting, now)
    # Decided and written with the bookings that arrive alongside (booking.queue).
    return await app.bookings.move(
        claims=claims,
        appointment_id=appointment_id,
        data=data,
        reminder_offsets=app.settings.reminder_offsets_minutes,
        now=now,
    )


async def _signed_in_access(
    app: AppState,
    session: AsyncSession,
    claims: TokenClaims,
    appointment_id: uuid.UUID,
    *,
    lock: bool,
) -> Access:
    """The appointment and the signed-in caller's capacity on it, the caller looked up in
    the session (a route that opens its own transactions rather than ``Acting``'s)."""
    user = await callers.user_for_claims(session, app.redis, claims)
    return await access_rules.for_user(session, user=user, appointment_id=appointment_id, lock=lock)


@router.post(
    "/{appointment_id}/mark-completed",
    response_model=AppointmentRead,
    responses=responses(401, 403, 404, 409),
    summary="Mark as completed (provider or admin)",
)
@needs(Scope.MANAGE)
async def mark_completed(
    acting: Acting, session: SessionDep, app: StateDep, now: NowDep
) -> AppointmentRead:
    return await _mark(acting, Status.COMPLETED, session, app, now)


@router.post(
    "/{appointment_id}/mark-no-show",
    response_model=AppointmentRead,
    responses=responses(401, 403, 404, 409),
    summary="Mark as a no-show (provider or admin); the client's count goes up",
)
@needs(Scope.MANAGE)
async def mark_no_show(
    acting: Acting, session: SessionDep, app: StateDep, now: NowDep
) -> AppointmentRead:
    return await _mark(acting, Status.NO_SHOW, session, app, now)


async def _mark(
    acting: Access, to: Status, session: SessionDep, app: StateDep, now: NowDep
) -> AppointmentRead:
    block_after = app.settings.no_show_block_threshold
    return appointment_read(
        await lifecycle.mark_finished(session, acting, to=to, now=now, block_after=block_after)
    )


# -- guests, by their manage token ---------------------------------------------------------


@guest_router.get(
    "/verify/{token}",
    response_class=Response,  # not HTMLResponse: errors are documented as JSON, as they are
    responses={200: {"description": "A page with a button", "content": {"text/html": {}}}},
    summary="The page a guest's verification link opens: a button, which verifies",
)
async def guest_verify_page(token: Token) -> HTMLResponse:
    """Opening the link changes nothing (mail scanners and link previews open links); the
    page's button posts to the same address, which verifies."""
    return HTMLResponse(verification_page())


@guest_router.post(
    "/verify/{token}",
    response_model=AppointmentRead,
    responses=responses(404, 409),
    summary="A guest verifies their email: the held booking is kept",
)
async def guest_verify(
    request: Request, token: Token, session: SessionDep, reminders: Reminders, now: NowDep
) -> Response:
    appointment = await guests.verify(session, token=token, reminder_offsets=reminders, now=now)
    read = appointment_read(appointment)
    if "text/html" in request.headers.get("accept", ""):  # the page's form, in a browser
        return HTMLResponse(verified_page(read))
    return Response(read.model_dump_json(), media_type="application/json")


@guest_router.get(
    "/{token}",
    response_model=AppointmentRead,
    responses=responses(404),
    summary="A guest's booking",
)
async def guest_read(acting: GuestActing) -> AppointmentRead:
    return appointment_read(acting.appointment)


@guest_router.post(
    "/{token}/cancel",
    response_model=AppointmentRead,
    responses=responses(404, 409),
    summary="A guest cancels (same policies as clients)",
)
async def guest_cancel(
    acting: GuestActing, session: SessionDep, now: NowDep, data: CancelRequest | None = None
) -> AppointmentRead:
    reason = data.reason if data else None
    return appointment_read(
        await lifecycle.cancel(session, acting, acting.provider, reason=reason, now=now)
    )


@guest_router.post(
    "/{token}/reschedule",
    response_model=AppointmentRead,
    responses=responses(404, 409, 422),
    summary="A guest reschedules (same policies)",
)
async def guest_reschedule(
    request: Request, token: Token, data: RescheduleRequest, now: NowDep
) -> AppointmentRead:
    """As a client's reschedule; a collective team booking moves whole."""

    async def acting(session: AsyncSession, lock: bool) -> Access:
        return await access_rules.for_guest_token(session, token=token, lock=lock)

    app: AppState = request.app.state.slotwise
    await _synced_before_move(app, acting, now)
    async with app.db.transaction(writes=True) as session:
        moved = await reschedule(
            session,
            await acting(session, True),
            kept_terms=app.terms,
            data=data,
            reminder_offsets=app.settings.reminder_offsets_minutes,
            now=now,
        )
        return appointment_read(moved)


# -- the provider's own list ----------------------------------------------------------------


@provider_router.get(
    "/me/appointments",
    response_model=Page[AppointmentRead],
    responses=responses(401, 403, 404),
    summary="Your upcoming appointments as a provider",
)
async def provider_upcoming(
    user: CurrentUser, session: SessionDep, now: NowDep, page: PageDep
) -> Page[AppointmentRead]:
    provider = await providers_service.get_own(session, user=user)
    rows, total = await queries.upcoming_for_provider(
        session, provider_id=provider.id, now=now, limit=page.limit, offset=page.offset
    )
    return _page([appointment_read(a) for a in rows], total, page)


# -- the provider's group sessions ------------------------------------------------------------


@provider_router.get(
    "/me/sessions",
    response_model=list[SessionRead],
    responses=responses(401, 403, 404, 422),
    summary="Your group sessions starting in a window, with their attendees",
)
async def provider_sessions(
    user: CurrentUser,
    session: SessionDep,
    start_from: Annotated[
        ApiAwareDatetime, Query(alias="from", description="Starts at or after (with offset).")
    ],
    start_to: Annotated[
        ApiAwareDatetime,
        Query(alias="to", description="Starts before (with offset); at most 62 days on."),
    ],
) -> list[SessionRead]:
    provider = await providers_service.get_own(session, user=user)
    found = await sessions.between(
        session, provider=provider, start_from=start_from, start_to=start_to
    )
    return [session_read(one) for one in found]


@provider_router.get(
    "/me/sessions/{session_key}",
    response_model=SessionRead,
    responses=responses(401, 403, 404),
    summary="One of your group sessions, with its attendees",
    description="404 `session_not_found`: no seat of yours has this session key (another "
    "provider's session, or none).",
)
async def provider_session(
    session_key: uuid.UUID, user: CurrentUser, session: SessionDep
) -> SessionRead:
    provider = await providers_service.get_own(session, user=user)
    return session_read(await sessions.get(session, provider=provider, session_key=session_key))


@provider_router.post(
    "/me/sessions/{session_key}/cancel",
    response_model=SessionRead,
    responses=responses(401, 403, 404, 409),
    summary="Cancel one of your group sessions: every seat, each attendee told",
    description="Every seat that still takes time is cancelled as its appointment would be "
    "(history, reminders withdrawn, its attendee mailed). 404 `session_not_found`: not one "
    "of your sessions; 409 `invalid_transition`: no seat left to cancel.",
)
@needs(Scope.MANAGE)
async def cancel_provider_session(
    session_key: uuid.UUID,
    data: CancelRequest,
    user: CurrentUser,
    session: SessionDep,
    now: NowDep,
) -> SessionRead:
    provider = await providers_service.get_own(session, user=user)
    cancelled = await sessions.cancel(
        session,
        user=user,
        provider=provider,
        session_key=session_key,
        reason=data.reason,
        now=now,
    )
    return session_read(cancelled)


# -- holds: a slot kept while the client fills in a form (booking.holds) --------------------

HoldTokenPath = Annotated[Text, Path(min_length=16, max_length=128, description="The hold token.")]

_TAKE = f"""Hold a slot for `SLOTWISE_HOLD_MINUTES` (10 by default) while the client fills in
a form; book it with `POST /appointments` and `"hold_token"`. Signed in or not. A held slot
is not listed and nobody else can hold or book it; when the hold ends its time is free
again by itself.

Refusals: those of a booking (`POST /appointments`: `provider_not_found`,
`service_not_found`, `too_soon`, `too_far`, `outside_availability`, `slot_unavailable`,
`session_full`, `client_conflict`, `limit_reached`, …), and 409 `{HoldLimitReached.code}`
(`details.max_holds`): the holder (an account, or a client address without one) already
holds `SLOTWISE_HOLD_MAX_PER_HOLDER` live slots with this provider. Holds are rate limited
per client address (`SLOTWISE_RATE_LIMIT_HOLD_IP`; 429 with `Retry-After`)."""


@holds_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldCreated,
    responses=responses(404, 409, 422, 429),
    summary="Hold a slot while the client fills in a form",
    description=_TAKE,
)
@needs(Scope.BOOK)
async def take_hold(
    request: Request, data: HoldCreate, claims: OptionalClaims, now: NowDep
) -> HoldCreated:
    app: AppState = request.app.state.slotwise
    address = client_address(request)
    await app.limiter.hit(app.settings.rate_limit_hold_ip, "hold-ip", address)
    await synced_for(app, claims, [data.provider_id], now)
    async with app.db.transaction(writes=True) as session:
        user = await callers.user_for_claims(session, app.redis, claims) if claims else None
        held = await holds.take(
            session,
            kept_terms=app.terms,
            user=user,
            address=address,
            data=data,
            now=now,
            policy=holds.HoldPolicy.from_settings(app.settings),
        )
    return HoldCreated(**_hold_read(held.hold).model_dump(), hold_token=held.token)


@holds_router.get(
    "/{token}",
    response_model=HoldRead,
    responses=responses(404),
    summary="A live hold",
    description=f"404 `{HoldNotFound.code}` for a token that holds nothing (any more).",
)
async def read_hold(token: HoldTokenPath, session: SessionDep, now: NowDep) -> HoldRead:
    return _hold_read(await holds.read(session, token=token, now=now))


@holds_router.delete(
    "/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(404),
    summary="Release a hold: its time is free at once",
)
async def release_hold(token: HoldTokenPath, session: SessionDep, now: NowDep) -> Response:
    await holds.release(session, token=token, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _hold_read(hold: Appointment) -> HoldRead:
    zone = ZoneInfo(hold.timezone)
    assert hold.hold_until is not None  # every hold has its end
    return HoldRead(
        provider_id=hold.provider_id,
        service_id=hold.service_id,
        start_at=hold.start_at.astimezone(zone),
        end_at=hold.end_at.astimezone(zone),
        timezone=hold.timezone,
        expires_at=hold.hold_until.astimezone(zone),
    )


# -- no-show records (admin) ----------------------------------------------------------------


@standings_router.get(
    "/",
    response_model=Page[Standing],
    responses=responses(401, 403),
    summary="No-show counts and booking blocks by client email (admin)",
)
async def list_standings(
    _admin: AdminUser,
    session: SessionDep,
    page: PageDep,
    blocked: Annotated[bool | None, Query()] = None,
) -> Page[Standing]:
    rows, total = await queries.standings(
        session, blocked=blocked, limit=page.limit, offset=page.offset
    )
    return Page[Standing](
        items=[Standing.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@standings_router.patch(
    "/{email}",
    response_model=Standing,
    responses=responses(401, 403, 404),
    summary="Block or unblock a client's booking, optionally resetting the count (admin)",
)
@needs(Scope.MANAGE)
async def update_standing(
    email: Annotated[Text, Path(max_length=320)],
    data: StandingUpdate,
    _admin: AdminUser,
    session: SessionDep,
    now: NowDep,
) -> Standing:
    row = await queries.update_standing(
        session,
        email=email.lower(),
        blocked=data.blocked,
        reset_no_shows=data.reset_no_shows,
        now=now,
    )
    return Standing.model_validate(row)

"""`GET /slots/search`: open slots across providers (mounted at /slots)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from slotwise.auth.deps import OptionalUser
from slotwise.availability import search as search_service
from slotwise.availability.search_schemas import SearchOrder, SlotSearchQuery, SlotSearchRead
from slotwise.db import SessionDep
from slotwise.errors import responses
from slotwise.state import NowDep, StateDep

router = APIRouter()


@router.get(
    "/search",
    response_model=SlotSearchRead,
    responses=responses(400, 422),
    summary="Open slots across providers, earliest first (a page at a time)",
    description="Every listed provider accepting bookings that matches `service` (a service's "
    "name or id), `specialty` and `q` (at least one of them: else 400 "
    "`search_filter_required`), with its open slots in the window merged by start. Each "
    "provider's slots are those its own listing (`GET /providers/{ref}/slots`) offers. "
    "`next_cursor` gives the next page. 400 `search_too_broad` when more providers match "
    "than `SLOTWISE_SEARCH_MAX_PROVIDERS`, `search_window_too_long` past "
    "`SLOTWISE_SEARCH_MAX_DAYS`, `invalid_cursor` for a cursor of another query; 422 "
    "`invalid_window` when `to` is before `from`. With `order=best`: the best `limit` slots "
    "for the signed-in client (or anyone), each with `score` and `reasons`, in one page "
    "(a cursor is 400 `invalid_cursor`).",
)
async def search_slots(
    query: Annotated[SlotSearchQuery, Query()],
    user: OptionalUser,
    session: SessionDep,
    app: StateDep,
    now: NowDep,
) -> Response:
    settings = app.settings
    limits = search_service.SearchLimits(
        max_providers=settings.search_max_providers, max_days=settings.search_max_days
    )
    history = None
    if query.order is SearchOrder.BEST and user is not None:
        history = await app.client_history(session, user.email.lower(), now)
    body = await search_service.search(
        session,
        app.slots,
        query=query,
        limits=limits,
        now=now,
        history=history,
        ranker=app.ranker,
    )
    return Response(body, media_type="application/json")

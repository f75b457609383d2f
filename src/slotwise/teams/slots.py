"""A team service's slots: its members' own listings of their shares, combined.

Each member's slots are their listing's (`availability.search.open_between`: the slot
cache, notice and horizon, as `GET /providers/{ref}/slots` of their share of the service);
round robin offers a start while any member's listing offers it, collective while every
member's does. So a team never offers a time its members' engines would not, and a
booking of an offered time is decided and written for the member as any booking is.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.availability import search
from slotwise.availability.ranking import Ranker
from slotwise.availability.search_schemas import SearchOrder
from slotwise.availability.slots import InvalidWindow, SlotListings
from slotwise.errors import InvalidInput
from slotwise.providers import service as providers_service
from slotwise.scheduling import ranking
from slotwise.teams import ranking as team_ranking
from slotwise.teams import repository
from slotwise.teams import service as teams_service
from slotwise.teams.models import Team, TeamMode, TeamService
from slotwise.teams.schemas import TeamSlotQuery, TeamSlotRead, TeamSlotsRead

MAX_DAYS = 31


class TeamWindowTooLong(InvalidInput):
    code = "window_too_long"
    message = f"A team's slot query spans at most {MAX_DAYS} days."


async def shares(
    session: AsyncSession, *, team: Team, team_service: TeamService
) -> list[tuple[teams_service.Member, uuid.UUID]]:
    """The members who offer the team service now (listed, their share active), each with
    their share's id, in the team's order (priority, then handle)."""
    members = [m for m in await teams_service.members(session, team=team) if m.listed]
    offered = {
        share.provider_id: share.id
        for share in await repository.member_services(session, team_service_ids=[team_service.id])
        if share.is_active
    }
    return [(m, offered[m.provider_id]) for m in members if m.provider_id in offered]


async def active_service(
    session: AsyncSession, *, team: Team, service_id: uuid.UUID
) -> TeamService:
    found = await teams_service.get_service(session, team=team, service_id=service_id)
    if not found.is_active:
        raise teams_service.TeamServiceNotFound()
    return found


async def team_slots(
    session: AsyncSession,
    listings: SlotListings,
    *,
    team: Team,
    query: TeamSlotQuery,
    now: datetime,
    ranker: Ranker,
    history: ranking.History | None = None,
) -> TeamSlotsRead:
    """The team service's open slots in the window, in time order, or (``order=best``)
    ranked by ``ranker`` for the client of ``history`` (``teams.ranking``)."""
    team_service = await active_service(session, team=team, service_id=query.service_id)
    first, last = query.first, query.last or query.first
    if last < first:
        raise InvalidWindow("to is before from.")
    if (last - first).days + 1 > MAX_DAYS:
        raise TeamWindowTooLong(details={"max_days": MAX_DAYS})
    span = search.instants(first, last, query.tz)
    assert span is not None
    window = search.widened(first, last)
    offering = await shares(session, team=team, team_service=team_service)
    found = await asyncio.gather(
        *(_listing(listings, member, share_id, window, span, now) for member, share_id in offering)
    )
    listed = [one for one in found if one is not None]
    free: dict[datetime, list[str]] = {}
    for one in listed:
        for start_at in one.answer.starts_at[one.lo : one.hi]:
            free.setdefault(start_at, []).append(one.member.public_handle)
    if team_service.mode is TeamMode.COLLECTIVE:
        everyone = len(offering)
        free = {at: handles for at, handles in free.items() if len(handles) == everyone}
    zone = ZoneInfo(query.tz)
    length = timedelta(minutes=team_service.duration_minutes)
    # Time order, or (order=best) the ranking's, each slot with its score and reasons.
    order: list[tuple[datetime, ranking.Ranked | None]] = [(at, None) for at in sorted(free)]
    best_first = query.order is SearchOrder.BEST
    if best_first and free:
        best = await team_ranking.best(
            session,
            team=team,
            mode=team_service.mode,
            listed=listed,
            free=free,
            history=history or ranking.History(),
            ranker=ranker,
            first=first,
            last=last,
            now=now,
        )
        order = [(one.slot.start_at, one) for one in best]
    slots = []
    for start_at, ranked in order:
        local = start_at.astimezone(zone)
        slots.append(
            TeamSlotRead(
                start_at=local,
                end_at=(start_at + length).astimezone(zone),
                date=local.date(),
                members=free[start_at],
                score=ranked.score if ranked else None,
                reasons=list(ranked.reasons) if ranked else None,
            )
        )
    return TeamSlotsRead(
        team=team.public_handle,
        service_id=team_service.id,
        mode=team_service.mode,
        timezone=query.tz,
        duration_minutes=team_service.duration_minutes,
        from_date=first,
        to_date=last,
        order=query.order,
        ranked_by=ranker.ranked_by if best_first else None,
        slots=slots,
    )


async def _listing(
    listings: SlotListings,
    member: teams_service.Member,
    share_id: uuid.UUID,
    window: tuple[date, date],
    span: tuple[datetime, datetime],
    now: datetime,
) -> team_ranking.Listed | None:
    """The member's listing of their share and the range of it open in ``span`` (None:
    delisted or withdrawn meanwhile)."""
    try:
        answer, lo, hi = await search.admitted(
            listings, member.public_handle, search.listing_query(window, share_id, None), span, now
        )
    except (providers_service.ProviderNotFound, providers_service.ServiceNotFound):
        return None
    return team_ranking.Listed(member, share_id, answer, lo, hi)

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
from slotwise.availability.slots import InvalidWindow, SlotListings
from slotwise.errors import InvalidInput
from slotwise.providers import service as providers_service
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
) -> TeamSlotsRead:
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
        *(
            _starts(listings, member.public_handle, share_id, window, span, now)
            for member, share_id in offering
        )
    )
    free: dict[datetime, list[str]] = {}
    for (member, _share), starts in zip(offering, found, strict=True):
        for start_at in starts:
            free.setdefault(start_at, []).append(member.public_handle)
    if team_service.mode is TeamMode.COLLECTIVE:
        everyone = len(offering)
        free = {at: handles for at, handles in free.items() if len(handles) == everyone}
    zone = ZoneInfo(query.tz)
    length = timedelta(minutes=team_service.duration_minutes)
    slots = []
    for start_at in sorted(free):
        local = start_at.astimezone(zone)
        slots.append(
            TeamSlotRead(
                start_at=local,
                end_at=(start_at + length).astimezone(zone),
                date=local.date(),
                members=free[start_at],
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
        slots=slots,
    )


async def _starts(
    listings: SlotListings,
    handle: str,
    share_id: uuid.UUID,
    window: tuple[date, date],
    span: tuple[datetime, datetime],
    now: datetime,
) -> list[datetime]:
    """The member's open starts of their share (none: delisted or withdrawn meanwhile)."""
    try:
        starts, _items = await search.open_between(
            listings, handle, search.listing_query(window, share_id, None), span, now
        )
    except (providers_service.ProviderNotFound, providers_service.ServiceNotFound):
        return []
    return starts

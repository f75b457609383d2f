"""Whether a requested booking can be placed: a pure function of the provider's terms, the
request and `now`.

`decide` judges one request against the terms (listed, accepting, the service, the length,
notice and horizon, a slot the engine offers) and answers where it sits, or a refusal.
`arrange` orders the requests decided together (a batch): a request that would compete
with an earlier one of the batch for the same time, or for the same limit, waits for the
next batch, where the database's answer to the earlier one is known. What only the
database knows (busy time, the client's standing, how many bookings a limit already
counts) is judged by the write, which answers each row with one of the same `Reason`s.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from slotwise.scheduling.intervals import Interval, OutOfRange
from slotwise.scheduling.policies import earliest_start, latest_start
from slotwise.scheduling.rules import resolve_wall_time
from slotwise.scheduling.seats import session_key_for
from slotwise.scheduling.slots import Slot
from slotwise.scheduling.terms import Offering, Terms


class Reason(StrEnum):
    """Why a booking is refused; the values are the API's error codes."""

    # Decided from the terms (`decide`):
    PROVIDER_NOT_FOUND = "provider_not_found"
    CANNOT_BOOK_YOURSELF = "cannot_book_yourself"
    PROVIDER_NOT_ACCEPTING = "provider_not_accepting"
    SERVICE_NOT_FOUND = "service_not_found"
    DURATION_MISMATCH = "duration_mismatch"
    TOO_SOON = "too_soon"
    TOO_FAR = "too_far"
    OUTSIDE_AVAILABILITY = "outside_availability"
    CALENDAR_BUSY = "calendar_busy"  # the provider's own calendar has an event then
    # Found by the write, which reads what is booked:
    SLOT_UNAVAILABLE = "slot_unavailable"
    CLIENT_CONFLICT = "client_conflict"
    CLIENT_BLOCKED = "client_blocked"
    LIMIT_REACHED = "limit_reached"
    GUEST_LIMIT_REACHED = "guest_limit_reached"
    SESSION_FULL = "session_full"
    HOLD_LIMIT_REACHED = "hold_limit_reached"
    TERMS_CHANGED = "provider_changed"


class Limit(StrEnum):
    """Which limit a LIMIT_REACHED refusal hit (its `details["limit"]`)."""

    PER_DAY = "per_day"
    PER_WEEK = "per_week"
    PER_CLIENT = "per_client"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    details: Mapping[str, object] = field(default_factory=dict)


class Kind(StrEnum):
    """What is asked: a new booking, or a new time for one, by its client (or guest), or by
    the provider or an admin (who skip the listing, notice and horizon, not the past)."""

    BOOKING = "booking"
    CLIENT_MOVE = "client_move"
    STAFF_MOVE = "staff_move"


@dataclass(frozen=True, slots=True)
class Request:
    """A time asked of a provider. `start_time`/`end_time` are aware instants, or naive
    wall times in the provider's zone."""

    service_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime | None = None
    by: uuid.UUID | None = None  # the account asking; None for a guest (or staff moving)
    kind: Kind = Kind.BOOKING
    # A held slot being booked: when the hold was taken. Notice and horizon are measured
    # from then (what was offered when it was held stays bookable while held); the past
    # is still the past.
    held_since: datetime | None = None
    # Asked through a team (`slotwise.teams`): a member's share of a team's service is
    # booked only so; asked of the member directly, it is no service of theirs.
    for_team: bool = False


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an accepted request sits: its time, the provider's time it blocks, and (a seat
    of a group session) the session's key: None for a one-to-one booking."""

    offering: Offering
    start_at: datetime
    end_at: datetime
    blocked_start_at: datetime
    blocked_end_at: datetime
    session_key: uuid.UUID | None = None
    # The two times in UTC, made once: a batch compares each placement with many others.
    time: Interval = field(init=False, repr=False, compare=False)
    blocked: Interval = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", Interval(self.start_at, self.end_at))
        object.__setattr__(self, "blocked", Interval(self.blocked_start_at, self.blocked_end_at))

    def same_session(self, other: "Placement") -> bool:
        return self.session_key is not None and self.session_key == other.session_key


def read_instant(value: datetime, zone: ZoneInfo) -> datetime:
    """The instant asked, in UTC: an offset-less datetime is a wall time in the provider's
    zone (RFC 5545 resolution, as `resolve_wall_time`). In UTC, a placement's intervals are
    made without converting it again (OverflowError at the calendar's ends, as there)."""
    if value.tzinfo is None:
        return resolve_wall_time(value.date(), value.time(), zone)
    return value.astimezone(UTC)


def requested_date(terms: Terms, request: Request) -> date | None:
    """The provider's local date a request starts on (which the terms must cover), or None
    if the instant cannot be read."""
    try:
        return terms.local_date(read_instant(request.start_time, terms.zone))
    except (OutOfRange, OverflowError):
        return None


def decide(terms: Terms, request: Request, *, now: datetime) -> Placement | Refusal:
    """The placement of the request, or the first reason the terms refuse it (in the order
    a client would fix them: who, what, how long, when; last, the provider's own calendar,
    whose busy time blocks a booking as an appointment's blocked time does)."""
    client_side = request.kind is not Kind.STAFF_MOVE
    if client_side and not terms.listed:
        return Refusal(Reason.PROVIDER_NOT_FOUND)
    if request.kind is Kind.BOOKING:
        if request.by is not None and request.by == terms.owner_id:
            return Refusal(Reason.CANNOT_BOOK_YOURSELF)
        if not terms.accepting_bookings:
            return Refusal(Reason.PROVIDER_NOT_ACCEPTING)
    offering = terms.offering(request.service_id)
    # A move keeps the appointment's own service, even one no longer offered.
    if offering is None or (
        request.kind is Kind.BOOKING
        and (not offering.is_active or offering.team != request.for_team)
    ):
        return Refusal(Reason.SERVICE_NOT_FOUND)
    placement = place(terms, offering, request)
    if isinstance(placement, Refusal):
        return placement
    refusal = _policy_refusal(
        terms, placement, now=now, since=request.held_since, client_side=client_side
    )
    if refusal is not None:
        return refusal
    on_date = terms.local_date(placement.start_at)
    if Slot(placement.start_at, placement.end_at) not in terms.offered(offering, on_date):
        return Refusal(Reason.OUTSIDE_AVAILABILITY)
    if terms.busy_during(placement.blocked):  # as a listing skips it: blocked time, buffers in
        return Refusal(Reason.CALENDAR_BUSY)
    return placement


def place(terms: Terms, offering: Offering, request: Request) -> Placement | Refusal:
    """The request's time and blocked time; DURATION_MISMATCH if its end is not the
    service's length after its start."""
    spec = offering.spec
    try:
        start_at = read_instant(request.start_time, terms.zone)
        end_at = start_at + spec.duration
        blocked = Placement(
            offering,
            start_at,
            end_at,
            start_at - spec.buffer_before,
            end_at + spec.buffer_after,
            session_key_for(terms.provider_id, offering.id, start_at)
            if spec.capacity > 1
            else None,
        )
        ends_elsewhere = (
            request.end_time is not None and read_instant(request.end_time, terms.zone) != end_at
        )
    except (OutOfRange, OverflowError):  # at the calendar's ends: no slot is offered there
        return Refusal(Reason.OUTSIDE_AVAILABILITY)
    if ends_elsewhere:
        minutes = spec.duration // timedelta(minutes=1)
        return Refusal(Reason.DURATION_MISMATCH, {"duration_minutes": minutes})
    return blocked


def _policy_refusal(
    terms: Terms,
    placement: Placement,
    *,
    now: datetime,
    since: datetime | None = None,
    client_side: bool,
) -> Refusal | None:
    """Notice and horizon for clients (measured from ``since``, when given: a hold's
    start); the past for everyone."""
    if not client_side or (since is not None and placement.start_at < now):
        return Refusal(Reason.TOO_SOON) if placement.start_at < now else None
    policy = terms.policy
    measured_from = now if since is None else since
    if placement.start_at < earliest_start(measured_from, policy):
        minutes = policy.min_notice // timedelta(minutes=1)
        return Refusal(Reason.TOO_SOON, {"min_notice_minutes": minutes})
    latest_at = latest_start(measured_from, policy)
    if latest_at is not None and placement.start_at > latest_at:
        days = policy.max_advance.days if policy.max_advance is not None else None
        return Refusal(Reason.TOO_FAR, {"max_advance_days": days})
    return None


@dataclass(frozen=True, slots=True)
class Proposal:
    """A placement decided for a client, before the write: what `arrange` compares."""

    terms: Terms
    placement: Placement
    client_key: str
    counted_per_client: bool  # a per-client limit (the provider's, or a guest's) applies


class Clash(StrEnum):
    """How two bookings of one batch compete: for the provider's time, for the client's
    time, or under a limit both count toward."""

    PROVIDER_TIME = "provider_time"
    CLIENT_TIME = "client_time"
    LIMIT = "limit"


def clash(one: Proposal, other: Proposal) -> Clash | None:
    """Would writing both let one decide the other's fate, and how? Two seats of one session
    share the provider's time and count as one session toward the day and week limits:
    only the same client twice clashes (the seats are written together, and the write
    counts the seats each takes)."""
    same_provider = one.terms.provider_id == other.terms.provider_id
    same_session = one.placement.same_session(other.placement)
    if (
        same_provider
        and not same_session
        and one.placement.blocked.overlaps(other.placement.blocked)
    ):
        return Clash.PROVIDER_TIME
    if one.client_key == other.client_key and one.placement.time.overlaps(other.placement.time):
        return Clash.CLIENT_TIME
    if not same_provider or same_session:
        return None
    limits = one.terms.limits
    one_at, other_at = one.placement.start_at, other.placement.start_at
    if limits.per_day is not None and one.terms.local_date(one_at) == one.terms.local_date(
        other_at
    ):
        return Clash.LIMIT
    if limits.per_week is not None and one.terms.week_of(one_at) == one.terms.week_of(other_at):
        return Clash.LIMIT
    if one.counted_per_client and other.counted_per_client and one.client_key == other.client_key:
        return Clash.LIMIT
    return None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A proposal that competes with an earlier one of the batch (`blocker`, its index)."""

    blocker: int
    clash: Clash


def settle(waiting: Proposal, blocker: Proposal, outcome: Refusal | None) -> Refusal | None:
    """What the write's answer to the blocker (`outcome`: None if written) tells of a
    proposal that waited on it: its own refusal, where that follows (the write would give
    it on what it holds now), or None: only the write can tell.

    Written, the blocker takes the time it shares with the waiting one. Refused, it leaves
    the database as it was: a waiting proposal is refused for the same reason when that
    reason covers it too — a time that holds the blocker's (what overlapped the blocker
    overlaps it), the same client blocked, the same day, week or client under a full limit.
    Not so for a seat, whose own session may be what holds the time, and which may join a
    session that a full day already counts: there only the write can tell.
    """
    found = clash(waiting, blocker)
    if outcome is None:
        if found is Clash.PROVIDER_TIME:
            return Refusal(Reason.SLOT_UNAVAILABLE)
        if found is Clash.CLIENT_TIME:
            return Refusal(Reason.CLIENT_CONFLICT)
        return None
    same_provider = waiting.terms.provider_id == blocker.terms.provider_id
    same_client = waiting.client_key == blocker.client_key
    reason = outcome.reason
    seat = waiting.placement.session_key is not None
    if reason is Reason.SLOT_UNAVAILABLE and same_provider and not seat:
        return outcome if waiting.placement.blocked.contains(blocker.placement.blocked) else None
    if reason is Reason.CLIENT_CONFLICT and same_client:
        return outcome if waiting.placement.time.contains(blocker.placement.time) else None
    if reason is Reason.CLIENT_BLOCKED and same_client:
        return outcome
    if reason is Reason.GUEST_LIMIT_REACHED and same_client and same_provider:
        return outcome
    if reason is Reason.SESSION_FULL and waiting.placement.same_session(blocker.placement):
        return outcome
    if reason is Reason.LIMIT_REACHED and same_provider:
        terms = waiting.terms
        limit = outcome.details.get("limit")
        one_at, other_at = waiting.placement.start_at, blocker.placement.start_at
        if seat and limit in (Limit.PER_DAY, Limit.PER_WEEK):
            return None
        if limit == Limit.PER_DAY and terms.local_date(one_at) == terms.local_date(other_at):
            return outcome
        if limit == Limit.PER_WEEK and terms.week_of(one_at) == terms.week_of(other_at):
            return outcome
        if limit == Limit.PER_CLIENT and same_client:
            return outcome
    return None


def arrange(proposals: Sequence[Proposal]) -> list[Waiting | None]:
    """Which proposals go to the write now (None), in order, and which compete with an
    earlier admitted one (`Waiting`): those wait for the blocker's fate (`settle`)."""
    admitted: list[int] = []
    placed: list[Waiting | None] = []
    for index, proposal in enumerate(proposals):
        waiting = None
        for earlier in admitted:
            found = clash(proposal, proposals[earlier])
            if found is not None:
                waiting = Waiting(earlier, found)
                break
        if waiting is None:
            admitted.append(index)
        placed.append(waiting)
    return placed

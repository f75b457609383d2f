"""Group sessions in the core: the session key, what a listing offers, and how seats of one
session go through `arrange` and `settle` together."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.scheduling import (
    Clash,
    Interval,
    Limits,
    Offering,
    Placement,
    Proposal,
    Reason,
    Refusal,
    Request,
    ServiceSpec,
    Session,
    Slot,
    Terms,
    arrange,
    clash,
    decide,
    open_seats,
    outside_sessions,
    session_key_for,
    settle,
)
from tests.unit.scheduling.test_decision import NOW, at, terms_with

CLASS = uuid.uuid4()
CLASS_SPEC = ServiceSpec(duration=timedelta(hours=1), interval=timedelta(minutes=30), capacity=2)


def group_terms(**changed: object) -> Terms:
    return terms_with(
        services={CLASS: Offering(id=CLASS, name="Class", is_active=True, spec=CLASS_SPEC)},
        **changed,
    )


def test_a_session_key_is_the_instant_not_its_offset() -> None:
    provider = uuid.uuid4()
    utc = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    berlin = utc.astimezone(ZoneInfo("Europe/Berlin"))
    assert session_key_for(provider, CLASS, utc) == session_key_for(provider, CLASS, berlin)
    assert session_key_for(provider, CLASS, utc) != session_key_for(provider, None, utc)
    assert session_key_for(provider, CLASS, utc) != session_key_for(
        provider, CLASS, utc + timedelta(minutes=30)
    )


def test_only_a_group_service_places_a_seat() -> None:
    terms = group_terms()
    seat = decide(terms, Request(CLASS, at(3, 10)), now=NOW)
    single = decide(terms, Request(None, at(3, 10)), now=NOW)
    assert isinstance(seat, Placement)
    assert isinstance(single, Placement)
    assert seat.session_key == session_key_for(terms.provider_id, CLASS, seat.start_at)
    assert single.session_key is None


def _hour(start_at: datetime) -> Slot:
    return Slot(start_at, start_at + timedelta(hours=1))


def test_a_listing_offers_a_sessions_start_with_its_free_seats_and_nothing_overlapping() -> None:
    ten = datetime(2026, 3, 3, 10, tzinfo=UTC)
    session = Session(ten, Interval(ten, ten + timedelta(hours=1)), taken=1)
    grid = [_hour(ten + timedelta(minutes=30 * k)) for k in range(-2, 4)]  # 09:00 .. 11:30
    offered = {
        (o.slot.start_at.hour, o.slot.start_at.minute): o.seats_left
        for o in open_seats(grid, [session], CLASS_SPEC)
    }
    assert offered == {(9, 0): 2, (10, 0): 1, (11, 0): 2, (11, 30): 2}
    full = Session(ten, session.blocked, taken=2)
    assert (10, 0) not in {
        (o.slot.start_at.hour, o.slot.start_at.minute) for o in open_seats(grid, [full], CLASS_SPEC)
    }
    # The seats' own spans are not busy time for their session; other busy time stays.
    lunch = Interval(ten + timedelta(hours=2), ten + timedelta(hours=3))
    assert outside_sessions([session.blocked, session.blocked, lunch], [session]) == [lunch]


def _proposal(terms: Terms, service: uuid.UUID | None, start_at: datetime, client: str) -> Proposal:
    placed = decide(terms, Request(service, start_at), now=NOW)
    assert isinstance(placed, Placement)
    return Proposal(terms, placed, client, counted_per_client=terms.limits.per_client is not None)


def test_seats_of_one_session_go_to_the_write_together() -> None:
    terms = group_terms(limits=Limits(per_day=1))
    a, b = _proposal(terms, CLASS, at(3, 10), "a"), _proposal(terms, CLASS, at(3, 10), "b")
    again_a = _proposal(terms, CLASS, at(3, 10), "a")
    other_session = _proposal(terms, CLASS, at(3, 10, 30), "c")
    single = _proposal(terms, None, at(3, 10), "d")
    assert clash(a, b) is None
    assert clash(a, again_a) is Clash.CLIENT_TIME
    assert clash(a, other_session) is Clash.PROVIDER_TIME
    assert clash(a, single) is Clash.PROVIDER_TIME
    # A session found full refuses the same session's seats that waited on it, not others.
    full = Refusal(Reason.SESSION_FULL, {"capacity": 2})
    assert settle(again_a, a, full) == full
    assert settle(single, a, full) is None
    # A seat's own session may be what refused a one-to-one booking: only the write tells.
    assert settle(a, single, Refusal(Reason.SLOT_UNAVAILABLE)) is None


def model(
    proposal: Proposal, booked: list[Proposal], written: list[Proposal] | None = None
) -> Refusal | None:
    """The write's judgment with seats, on a list of bookings (the database), in the write's
    order of reasons; ``written``: the rows of the batch written before it, whose seats it
    counts (the write's running count, ``write.batch_verdicts``)."""
    terms, placement = proposal.terms, proposal.placement
    mine = [b for b in booked if b.terms.provider_id == terms.provider_id]

    def session_of(b: Proposal) -> object:
        return b.placement.session_key or id(b)

    own = placement.session_key or object()
    if any(b.placement.blocked.overlaps(placement.blocked) and session_of(b) != own for b in mine):
        return Refusal(Reason.SLOT_UNAVAILABLE)
    if any(
        b.client_key == proposal.client_key and b.placement.time.overlaps(placement.time)
        for b in booked
    ):
        return Refusal(Reason.CLIENT_CONFLICT)
    limits = terms.limits
    day, week = terms.local_date(placement.start_at), terms.week_of(placement.start_at)
    if limits.per_client is not None and (
        sum(b.client_key == proposal.client_key and b.placement.start_at > NOW for b in mine)
        >= limits.per_client
    ):
        return Refusal(Reason.LIMIT_REACHED, {"limit": "per_client", "maximum": limits.per_client})
    for name, maximum, same in (
        ("per_day", limits.per_day, lambda b: terms.local_date(b.placement.start_at) == day),
        ("per_week", limits.per_week, lambda b: terms.week_of(b.placement.start_at) == week),
    ):
        sessions = {session_of(b) for b in mine if same(b) and session_of(b) != own}
        if maximum is not None and len(sessions) >= maximum:
            return Refusal(Reason.LIMIT_REACHED, {"limit": name, "maximum": maximum})
    if placement.session_key is not None:
        seats = [b for b in mine + (written or []) if session_of(b) == own]
        capacity = placement.offering.capacity
        if len(seats) >= capacity:
            return Refusal(Reason.SESSION_FULL, {"capacity": capacity})
    return None


BOOKINGS = st.lists(
    st.tuples(
        st.sampled_from([None, CLASS]),
        st.integers(min_value=3, max_value=4),
        st.integers(min_value=9, max_value=11),
        st.sampled_from([0, 30]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
    ),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(
    BOOKINGS,
    BOOKINGS,
    st.sampled_from([Limits(), Limits(per_day=1), Limits(per_week=2), Limits(per_client=1)]),
)
def test_a_batch_with_seats_is_judged_as_if_written_one_by_one(
    existing: list[tuple[uuid.UUID | None, int, int, int, str]],
    asked: list[tuple[uuid.UUID | None, int, int, int, str]],
    limits: Limits,
) -> None:
    """The rows `arrange` admits together, judged on the database before the batch with
    their running seat count, get the verdict each would get written one after another;
    and `settle` never refuses what the write would then write."""
    terms = group_terms(limits=limits)

    def proposals(given_: list[tuple[uuid.UUID | None, int, int, int, str]]) -> list[Proposal]:
        found = []
        for service, day, hour, minute, client in given_:
            placed = decide(terms, Request(service, at(day, hour, minute)), now=NOW)
            if isinstance(placed, Placement):
                found.append(Proposal(terms, placed, client, limits.per_client is not None))
        return found

    booked: list[Proposal] = []
    for one in proposals(existing):  # a database the write could have produced
        if model(one, booked) is None:
            booked.append(one)
    batch = proposals(asked)
    placed = arrange(batch)
    written: list[Proposal] = []
    outcomes: dict[int, Refusal | None] = {}
    for index, waiting in enumerate(placed):
        if waiting is not None:
            continue
        together = model(batch[index], booked, written)
        assert together == model(batch[index], booked + written), batch[index]
        outcomes[index] = together
        if together is None:
            written.append(batch[index])
    after = booked + written
    for one, waiting in zip(batch, placed, strict=True):
        if waiting is None:
            continue
        settled = settle(one, batch[waiting.blocker], outcomes[waiting.blocker])
        if settled is not None:
            assert model(one, after) is not None, (one, settled)

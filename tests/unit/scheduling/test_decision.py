"""The booking decision: a pure function of the terms, the request and now."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise import scheduling
from slotwise.scheduling import (
    BookingPolicy,
    Clash,
    Kind,
    Limits,
    Offering,
    Placement,
    Proposal,
    Reason,
    Refusal,
    Request,
    ServiceSpec,
    Terms,
    Waiting,
    WeeklyRule,
    arrange,
    clash,
    decide,
    settle,
)

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
OWNER = uuid.uuid4()
SERVICE = uuid.uuid4()
HALF_HOUR = ServiceSpec(duration=timedelta(minutes=30))


def terms_with(**changed: object) -> Terms:
    base = Terms(
        provider_id=uuid.uuid4(),
        owner_id=OWNER,
        version=1,
        zone=NEW_YORK,
        listed=True,
        accepting_bookings=True,
        requires_confirmation=False,
        verify_guest_email=False,
        policy=BookingPolicy(min_notice=timedelta(hours=1), max_advance=timedelta(days=30)),
        default=Offering(id=None, name=None, is_active=True, spec=HALF_HOUR),
        services={
            SERVICE: Offering(
                id=SERVICE,
                name="Long",
                is_active=True,
                spec=ServiceSpec(duration=timedelta(hours=1), buffer_after=timedelta(minutes=15)),
            )
        },
        weekly=tuple(WeeklyRule(day, time(9), time(17)) for day in range(7)),
        overrides=(),
        time_off=(),
        first_date=date(2026, 3, 1),
        last_date=date(2026, 4, 2),
    )
    return replace(base, **changed)  # type: ignore[arg-type]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall time in New York in March 2026, as an aware instant."""
    return datetime(2026, 3, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def reason(found: Placement | Refusal) -> Reason | None:
    return found.reason if isinstance(found, Refusal) else None


def test_a_slot_on_offer_is_placed_with_its_buffers() -> None:
    placed = decide(terms_with(), Request(SERVICE, at(3, 10)), now=NOW)
    assert isinstance(placed, Placement)
    assert (placed.start_at, placed.end_at) == (at(3, 10), at(3, 11))
    assert (placed.blocked_start_at, placed.blocked_end_at) == (at(3, 10), at(3, 11, 15))


@given(minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_an_instant_asked_with_any_offset_is_placed_in_utc(minutes: int) -> None:
    """Whatever offset the client wrote the time with, the placement holds the instant in
    UTC (its intervals are made without converting it again), the same as asked in UTC."""
    offset = timezone(timedelta(minutes=minutes))
    asked = decide(terms_with(), Request(SERVICE, at(3, 10).astimezone(offset)), now=NOW)
    assert isinstance(asked, Placement)
    assert asked == decide(terms_with(), Request(SERVICE, at(3, 10)), now=NOW)
    assert (asked.start_at.tzinfo, asked.end_at.tzinfo) == (UTC, UTC)
    assert (asked.blocked_start_at.tzinfo, asked.blocked_end_at.tzinfo) == (UTC, UTC)


def test_an_instant_utc_cannot_hold_is_refused_not_raised() -> None:
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))
    early = datetime(1, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=14)))
    for start in (late, early):
        assert reason(decide(terms_with(), Request(None, start), now=NOW)) is (
            Reason.OUTSIDE_AVAILABILITY
        )


def test_refusals_come_in_the_order_a_client_would_fix_them() -> None:
    terms = terms_with()
    inactive = {SERVICE: replace(terms.services[SERVICE], is_active=False)}
    cases: list[tuple[Terms, Request, Reason]] = [
        (terms_with(listed=False), Request(None, at(3, 10)), Reason.PROVIDER_NOT_FOUND),
        (terms, Request(None, at(3, 10), by=OWNER), Reason.CANNOT_BOOK_YOURSELF),
        (
            terms_with(accepting_bookings=False),
            Request(None, at(3, 10)),
            Reason.PROVIDER_NOT_ACCEPTING,
        ),
        (terms, Request(uuid.uuid4(), at(3, 10)), Reason.SERVICE_NOT_FOUND),
        (terms_with(services=inactive), Request(SERVICE, at(3, 10)), Reason.SERVICE_NOT_FOUND),
        (terms, Request(None, at(3, 10), at(3, 11)), Reason.DURATION_MISMATCH),
        (terms, Request(None, NOW + timedelta(minutes=30)), Reason.TOO_SOON),
        (terms, Request(None, at(3, 10) + timedelta(days=40)), Reason.TOO_FAR),
        (terms, Request(None, at(3, 10, 10)), Reason.OUTSIDE_AVAILABILITY),  # off the grid
        (terms, Request(None, at(3, 8)), Reason.OUTSIDE_AVAILABILITY),  # before hours
    ]
    for given_terms, request, expected in cases:
        assert reason(decide(given_terms, request, now=NOW)) is expected, (request, expected)


def test_refusals_carry_what_the_client_needs_to_fix_them() -> None:
    terms = terms_with()
    mismatch = decide(terms, Request(None, at(3, 10), at(3, 11)), now=NOW)
    assert mismatch == Refusal(Reason.DURATION_MISMATCH, {"duration_minutes": 30})
    soon = decide(terms, Request(None, NOW), now=NOW)
    assert soon == Refusal(Reason.TOO_SOON, {"min_notice_minutes": 60})
    far = decide(terms, Request(None, at(3, 10) + timedelta(days=40)), now=NOW)
    assert far == Refusal(Reason.TOO_FAR, {"max_advance_days": 30})


def test_a_held_slot_keeps_the_notice_and_horizon_of_when_it_was_held() -> None:
    terms = terms_with()
    start = at(2, 9)  # 09:00 in New York, 14:00 UTC: two hours after NOW
    held_at = start - timedelta(hours=1)  # the notice's first instant, then
    later = held_at + timedelta(minutes=10)
    assert reason(decide(terms, Request(None, start), now=later)) is Reason.TOO_SOON
    placed = decide(terms, Request(None, start, held_since=held_at), now=later)
    assert isinstance(placed, Placement)
    # The past is the past, whenever it was held.
    gone = decide(terms, Request(None, start, held_since=held_at), now=start + timedelta(minutes=1))
    assert gone == Refusal(Reason.TOO_SOON)


def test_a_move_keeps_an_inactive_service_and_staff_skip_notice_and_horizon() -> None:
    inactive = {SERVICE: replace(terms_with().services[SERVICE], is_active=False)}
    terms = terms_with(services=inactive)
    moved = decide(terms, Request(SERVICE, at(3, 10), kind=Kind.CLIENT_MOVE), now=NOW)
    assert isinstance(moved, Placement)
    soon = NOW + timedelta(minutes=30)  # 07:30 in New York: outside hours for a client anyway
    staff = decide(terms, Request(None, at(2, 9, 30), kind=Kind.STAFF_MOVE), now=NOW)
    assert isinstance(staff, Placement)  # 09:30 is inside the client's notice, not past
    past = decide(terms, Request(None, at(2, 6), kind=Kind.STAFF_MOVE), now=NOW)
    assert past == Refusal(Reason.TOO_SOON)
    assert soon > NOW
    unlisted = terms_with(listed=False)
    assert isinstance(
        decide(unlisted, Request(None, at(3, 10), kind=Kind.STAFF_MOVE), now=NOW), Placement
    )
    assert reason(decide(unlisted, Request(None, at(3, 10), kind=Kind.CLIENT_MOVE), now=NOW)) is (
        Reason.PROVIDER_NOT_FOUND
    )


def test_a_wall_time_in_the_spring_gap_is_read_as_rfc_5545_says() -> None:
    """2026-03-08 02:30 does not exist in New York: it is read with the offset before the gap
    (07:30Z, shown 03:30 EDT), which is a slot of a day open around the clock."""
    terms = terms_with(
        weekly=tuple(WeeklyRule(day, time(0), time(0)) for day in range(7)),
        policy=BookingPolicy(),
    )
    placed = decide(terms, Request(None, datetime(2026, 3, 8, 2, 30)), now=NOW)
    assert isinstance(placed, Placement)
    assert placed.start_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert placed.end_at - placed.start_at == timedelta(minutes=30)


def test_a_staff_move_past_the_terms_dates_needs_terms_covering_them() -> None:
    terms = terms_with()
    far = date(2026, 6, 1)
    request = Request(None, datetime.combine(far, time(10)), kind=Kind.STAFF_MOVE)
    assert scheduling.requested_date(terms, request) == far
    widened = terms.covering(far, (), ())
    assert widened.covers(far)
    assert not terms.covers(far)
    assert isinstance(decide(widened, request, now=NOW), Placement)


@settings(max_examples=150, deadline=None)
@given(
    day=st.integers(min_value=1, max_value=31),
    minutes=st.integers(min_value=0, max_value=24 * 60 - 1),
    notice_hours=st.integers(min_value=0, max_value=72),
    start_hour=st.integers(min_value=0, max_value=12),
    length_hours=st.integers(min_value=1, max_value=11),
)
def test_a_booking_is_accepted_exactly_when_the_listing_offers_its_slot(
    day: int, minutes: int, notice_hours: int, start_hour: int, length_hours: int
) -> None:
    """The decision and the listing agree: one engine, one grid, one policy."""
    policy = BookingPolicy(min_notice=timedelta(hours=notice_hours), max_advance=timedelta(days=20))
    end = time(start_hour + length_hours) if start_hour + length_hours < 24 else time(0)
    weekly = tuple(WeeklyRule(d, time(start_hour), end) for d in range(7))
    terms = terms_with(policy=policy, weekly=weekly)
    start = datetime.combine(date(2026, 3, day), time()) + timedelta(minutes=minutes)
    start_at = start.replace(tzinfo=NEW_YORK).astimezone(UTC)
    listed = scheduling.compute_slots(
        zone=NEW_YORK,
        start_date=date(2026, 3, day),
        end_date=date(2026, 3, day),
        weekly=weekly,
        service=HALF_HOUR,
        policy=policy,
        now=NOW,
    )
    offered = any(slot.start_at == start_at for slot in listed)
    decided = decide(terms, Request(None, start_at), now=NOW)
    assert isinstance(decided, Placement) == offered, (start_at, decided)


def proposal(
    terms: Terms, start_at: datetime, client: str, *, per_client: bool = False
) -> Proposal:
    placed = decide(terms, Request(None, start_at), now=NOW)
    assert isinstance(placed, Placement)
    return Proposal(terms, placed, client, counted_per_client=per_client)


def test_requests_that_compete_wait_for_the_next_batch() -> None:
    terms = terms_with()
    other = terms_with()
    batch = [
        proposal(terms, at(3, 10), "a"),
        proposal(terms, at(3, 10), "b"),  # the same slot
        proposal(other, at(3, 10), "a"),  # the same client's time, elsewhere
        proposal(terms, at(3, 11), "c"),
    ]
    assert arrange(batch) == [
        None,
        Waiting(0, Clash.PROVIDER_TIME),
        Waiting(0, Clash.CLIENT_TIME),
        None,
    ]


def test_a_waiting_request_is_settled_by_its_blockers_fate_where_that_decides_it() -> None:
    terms = terms_with()
    daily = terms_with(limits=Limits(per_day=1))
    ten = proposal(terms, at(3, 10), "a")
    same_slot = proposal(terms, at(3, 10), "b")
    same_client_elsewhere = proposal(terms_with(), at(3, 10), "a")
    slot_unavailable = Refusal(Reason.SLOT_UNAVAILABLE)
    # Written: the time it shares is taken; a shared limit only the write can judge.
    assert settle(same_slot, ten, None) == slot_unavailable
    assert settle(same_client_elsewhere, ten, None) == Refusal(Reason.CLIENT_CONFLICT)
    same_day = proposal(daily, at(3, 14), "b")
    assert settle(same_day, proposal(daily, at(3, 10), "a"), None) is None
    # Refused: the same reason where it covers the waiting one too.
    assert settle(same_slot, ten, slot_unavailable) == slot_unavailable
    longer = decide(terms, Request(SERVICE, at(3, 10)), now=NOW)  # blocks 10:00-11:15
    assert isinstance(longer, Placement)
    holding = Proposal(terms, longer, "c", counted_per_client=False)
    assert settle(holding, ten, slot_unavailable) == slot_unavailable
    assert settle(ten, holding, slot_unavailable) is None  # 10:45 may be what refused it
    blocked = Refusal(Reason.CLIENT_BLOCKED)
    assert settle(same_client_elsewhere, ten, blocked) == blocked
    assert settle(same_slot, ten, blocked) is None
    full = Refusal(Reason.LIMIT_REACHED, {"limit": "per_day", "maximum": 1})
    assert settle(same_day, proposal(daily, at(3, 10), "a"), full) == full
    assert settle(proposal(daily, at(4, 10), "b"), proposal(daily, at(3, 10), "a"), full) is None
    changed = Refusal(Reason.TERMS_CHANGED)
    assert settle(same_slot, ten, changed) is None


def test_a_buffer_makes_neighbouring_bookings_compete() -> None:
    terms = terms_with()
    buffered = decide(terms, Request(SERVICE, at(3, 10)), now=NOW)
    assert isinstance(buffered, Placement)
    first = Proposal(terms, buffered, "a", counted_per_client=False)
    assert clash(proposal(terms, at(3, 11), "b"), first) is Clash.PROVIDER_TIME  # 11:00-11:15
    assert clash(proposal(terms, at(3, 11, 30), "b"), first) is None


def test_bookings_counted_by_one_limit_compete_and_only_then() -> None:
    daily = terms_with(limits=Limits(per_day=3))
    late, early_next = at(3, 16, 30), at(4, 9)
    assert clash(proposal(daily, at(3, 9), "a"), proposal(daily, late, "b")) is Clash.LIMIT
    assert clash(proposal(daily, late, "a"), proposal(daily, early_next, "b")) is None
    weekly = terms_with(limits=Limits(per_week=5))
    sunday, monday = at(8, 10), at(9, 10)  # 2026-03-08 is a Sunday
    assert clash(proposal(weekly, at(2, 13), "a"), proposal(weekly, sunday, "b")) is Clash.LIMIT
    assert clash(proposal(weekly, sunday, "a"), proposal(weekly, monday, "b")) is None
    plain = terms_with()
    assert clash(proposal(plain, at(3, 9), "a"), proposal(plain, late, "b")) is None
    one, two = (proposal(plain, at(3, h), "a", per_client=True) for h in (9, 13))
    assert clash(one, two) is Clash.LIMIT


def test_a_week_is_monday_to_sunday_in_the_providers_zone_across_a_dst_change() -> None:
    terms = terms_with()
    week = terms.week_of(at(8, 12))  # the week that springs forward
    assert week.start_at == at(2, 0)
    assert week.end_at == at(9, 0)
    assert week.duration == timedelta(hours=167)
    assert terms.day_of(datetime(2026, 3, 8, 12, tzinfo=UTC)).duration == timedelta(hours=23)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=3, max_value=9),  # day
            st.integers(min_value=9, max_value=16),  # hour
            st.sampled_from([0, 30]),
            st.sampled_from(["a", "b", "c"]),
            st.booleans(),  # the long, buffered service
            st.booleans(),  # provider one or two
        ),
        max_size=12,
    ),
    st.sampled_from([Limits(), Limits(per_day=2), Limits(per_week=3), Limits(per_client=1)]),
)
def test_what_arrange_admits_never_competes_and_what_it_defers_always_does(
    asked: list[tuple[int, int, int, str, bool, bool]], limits: Limits
) -> None:
    providers = [terms_with(limits=limits), terms_with(limits=limits)]
    batch = []
    for day, hour, minute, client, long, second in asked:
        terms = providers[second]
        placed = decide(terms, Request(SERVICE if long else None, at(day, hour, minute)), now=NOW)
        if isinstance(placed, Placement):
            batch.append(Proposal(terms, placed, client, limits.per_client is not None))
    admitted = [waiting is None for waiting in arrange(batch)]
    chosen = [p for p, now in zip(batch, admitted, strict=True) if now]
    assert not batch or admitted[0]
    for i, one in enumerate(chosen):
        assert all(clash(one, other) is None for other in chosen[i + 1 :])
    for index, (one, now) in enumerate(zip(batch, admitted, strict=True)):
        if not now:
            earlier = [p for p, ok in zip(batch[:index], admitted[:index], strict=True) if ok]
            assert any(clash(one, other) is not None for other in earlier)


def test_a_full_day_or_week_is_offered_no_more() -> None:
    booked = [at(3, 9), at(3, 10), at(3, 16, 30), at(4, 9), at(9, 23)]  # 03-09 23:00 is Monday
    assert scheduling.full_dates(Limits(), NEW_YORK, booked) == set()
    assert scheduling.full_dates(Limits(per_day=3), NEW_YORK, booked) == {date(2026, 3, 3)}
    week = {date(2026, 3, day) for day in range(2, 9)}
    assert scheduling.full_dates(Limits(per_week=4), NEW_YORK, booked) == week
    assert scheduling.full_dates(Limits(per_week=5), NEW_YORK, booked) == set()


# -- settle never refuses what the write would write -----------------------------------------


def written_model(
    proposal_: Proposal, booked: list[Proposal], blocked_clients: set[str], now: datetime
) -> Refusal | None:
    """A reference of the write's judgment, on a list of bookings (the test's model of the
    database): the same reasons, in the same order, without SQL."""
    terms, placement = proposal_.terms, proposal_.placement
    mine = [b for b in booked if b.terms.provider_id == terms.provider_id]
    if proposal_.client_key in blocked_clients:
        return Refusal(Reason.CLIENT_BLOCKED)
    if any(b.placement.blocked.overlaps(placement.blocked) for b in mine):
        return Refusal(Reason.SLOT_UNAVAILABLE)
    if any(
        b.client_key == proposal_.client_key and b.placement.time.overlaps(placement.time)
        for b in booked
    ):
        return Refusal(Reason.CLIENT_CONFLICT)
    limits = terms.limits
    day, week = terms.local_date(placement.start_at), terms.week_of(placement.start_at)
    counts = [
        (
            "per_client",
            limits.per_client if proposal_.counted_per_client else None,
            [b.client_key == proposal_.client_key and b.placement.start_at > now for b in mine],
        ),
        ("per_day", limits.per_day, [terms.local_date(b.placement.start_at) == day for b in mine]),
        ("per_week", limits.per_week, [terms.week_of(b.placement.start_at) == week for b in mine]),
    ]
    for name, maximum, counted in counts:
        if maximum is not None and sum(counted) >= maximum:
            return Refusal(Reason.LIMIT_REACHED, {"limit": name, "maximum": maximum})
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=3, max_value=4),
            st.integers(min_value=9, max_value=12),
            st.sampled_from([0, 30]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.booleans(),
        ),
        max_size=6,
    ),
    st.lists(
        st.tuples(
            st.integers(min_value=3, max_value=4),
            st.integers(min_value=9, max_value=12),
            st.sampled_from([0, 30]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=10,
    ),
    st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=1),
    st.sampled_from([Limits(), Limits(per_day=2), Limits(per_week=3), Limits(per_client=1)]),
)
def test_settle_never_refuses_what_the_write_would_write(
    existing: list[tuple[int, int, int, str, bool]],
    asked: list[tuple[int, int, int, str, bool]],
    blocked_clients: set[str],
    limits: Limits,
) -> None:
    terms = terms_with(limits=limits)

    def proposals(given_: list[tuple[int, int, int, str, bool]]) -> list[Proposal]:
        found = []
        for day, hour, minute, client, long in given_:
            placed = decide(
                terms, Request(SERVICE if long else None, at(day, hour, minute)), now=NOW
            )
            if isinstance(placed, Placement):
                found.append(Proposal(terms, placed, client, limits.per_client is not None))
        return found

    booked = proposals(existing)
    batch = proposals(asked)
    placed = arrange(batch)
    outcomes = {
        index: written_model(batch[index], booked, blocked_clients, NOW)
        for index, waiting in enumerate(placed)
        if waiting is None
    }
    after = booked + [batch[index] for index, outcome in outcomes.items() if outcome is None]
    for one, waiting in zip(batch, placed, strict=True):
        if waiting is None:
            continue
        settled = settle(one, batch[waiting.blocker], outcomes[waiting.blocker])
        if settled is not None:
            assert written_model(one, after, blocked_clients, NOW) is not None, (one, settled)


@settings(max_examples=200, deadline=None)
@given(
    day=st.integers(min_value=3, max_value=20),
    minutes=st.integers(min_value=0, max_value=24 * 60 - 1).map(lambda m: m - m % 15),
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=24 * 60), st.integers(1, 180)), max_size=4
    ),
    buffered=st.booleans(),
)
def test_calendar_busy_time_refuses_exactly_what_the_listing_leaves_out(
    day: int, minutes: int, events: list[tuple[int, int]], buffered: bool
) -> None:
    """Busy time from the provider's calendars (terms) blocks a booking exactly where the
    listing, given it as busy time, leaves the slot out: the booking's blocked time, buffers
    in, must not overlap it; touching is fine."""
    midnight = datetime(2026, 3, day, tzinfo=NEW_YORK)
    busy = scheduling.merge(
        scheduling.Interval(
            (midnight + timedelta(minutes=start)).astimezone(UTC),
            (midnight + timedelta(minutes=start + length)).astimezone(UTC),
        )
        for start, length in sorted(events)
    )
    service_id = SERVICE if buffered else None
    terms = terms_with(busy=tuple(busy))
    offering = terms.offering(service_id)
    assert offering is not None
    start_at = (midnight + timedelta(minutes=minutes)).astimezone(UTC)

    def listed(busy_time: list[scheduling.Interval]) -> bool:
        slots = scheduling.compute_slots(
            zone=NEW_YORK,
            start_date=date(2026, 3, day),
            end_date=date(2026, 3, day),
            weekly=terms.weekly,
            busy=busy_time,
            service=offering.spec,
            policy=terms.policy,
            now=NOW,
        )
        return any(slot.start_at == start_at for slot in slots)

    decided = decide(terms, Request(service_id, start_at), now=NOW)
    assert isinstance(decided, Placement) == listed(busy), (start_at, decided)
    if listed([]) and not listed(busy):
        assert reason(decided) is Reason.CALENDAR_BUSY


def test_terms_busy_time_is_found_by_overlap_not_by_touching() -> None:
    terms = terms_with(
        busy=(scheduling.Interval(at(3, 10), at(3, 11)), scheduling.Interval(at(3, 14), at(3, 15)))
    )
    assert terms.busy_during(scheduling.Interval(at(3, 10, 30), at(3, 10, 45)))
    assert terms.busy_during(scheduling.Interval(at(3, 9), at(3, 16)))
    assert terms.busy_during(scheduling.Interval(at(3, 14, 59), at(3, 15, 30)))
    assert not terms.busy_during(scheduling.Interval(at(3, 11), at(3, 14)))
    assert not terms.busy_during(scheduling.Interval(at(3, 9), at(3, 10)))
    assert not terms.busy_during(scheduling.Interval(at(3, 15), at(3, 16)))
    assert not terms_with().busy_during(scheduling.Interval(at(3, 9), at(3, 16)))
    widened = terms.covering(
        date(2026, 4, 20), (), (), (scheduling.Interval(at(3, 11), at(3, 12)),)
    )
    assert widened.busy == (
        scheduling.Interval(at(3, 10), at(3, 12)),
        scheduling.Interval(at(3, 14), at(3, 15)),
    )

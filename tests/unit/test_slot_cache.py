"""SlotCache: an answer is used only while nothing it was computed from has changed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from slotwise.availability.busy import Moved, Taken
from slotwise.availability.cache import MAX_PENDING, Basis, SlotAnswer, SlotCache, SlotKey
from slotwise.availability.schemas import SlotRead
from slotwise.availability.slots import _each_json
from slotwise.scheduling import BookingPolicy, ServiceSpec

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
PROVIDER = uuid.uuid4()
USER = uuid.uuid4()


def key(ref: str = "ada") -> SlotKey:
    return SlotKey(ref, NOW.date(), NOW.date(), None, None, None)


def answer(
    marked_at: int, *, provider: uuid.UUID = PROVIDER, items: int = 3, ref: str = "ada"
) -> SlotAnswer:
    basis = Basis(
        schedule=cast(Any, None),  # what a revision reads; the cache never does
        spec=ServiceSpec(duration=timedelta(hours=1)),
        opened=[],
        reach=None,
        counted=None,
        taken={},
    )
    return SlotAnswer(
        key=key(ref),
        provider_id=provider,
        user_id=USER,
        policy=BookingPolicy(min_notice=timedelta(hours=1)),
        starts_at=[NOW + timedelta(hours=hour) for hour in range(items)],
        seats_left=[None] * items,
        head=b'{"slots":[',
        items=[b'"%d"' % hour for hour in range(items)],
        tail=b"]}",
        marked_at=marked_at,
        until=None,
        basis=basis,
    )


def unrevisable(answer: SlotAnswer, moves: list[Moved]) -> SlotAnswer:
    raise AssertionError("no booking's change was given to it")


def moved(provider: uuid.UUID = PROVIDER) -> Moved:
    start = NOW + timedelta(days=1)
    taken = Taken(start, start, start + timedelta(hours=1), takes_time=True)
    return Moved(provider, uuid.uuid4(), taken)


def test_an_answer_is_kept_until_its_provider_changes() -> None:
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    cache.changed([uuid.uuid4()])  # someone else
    assert cache.get(key(), unrevisable) is not None
    cache.changed([PROVIDER])
    assert cache.get(key(), unrevisable) is None


def test_a_change_during_the_reads_voids_the_answer() -> None:
    cache = SlotCache(max_bytes=10_000)
    marked_at = cache.mark()
    cache.changed([PROVIDER])  # committed after the reads began: they may have missed it
    cache.put(key(), answer(marked_at))
    assert cache.get(key(), unrevisable) is None
    cache.put(key(), answer(cache.mark()))  # read after the change: fine
    assert cache.get(key(), unrevisable) is not None


def test_a_change_to_the_providers_user_voids_it() -> None:
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    cache.changed([USER])
    assert cache.get(key(), unrevisable) is None


def test_flush_voids_everything_even_answers_being_computed() -> None:
    cache = SlotCache(max_bytes=10_000)
    marked_at = cache.mark()
    cache.put(key("a"), answer(marked_at))
    cache.flush()
    cache.put(key("b"), answer(marked_at))
    assert cache.get(key("a"), unrevisable) is None
    assert cache.get(key("b"), unrevisable) is None
    assert len(cache) == 0


def test_a_disabled_cache_answers_nothing() -> None:
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    cache.enabled = False
    assert cache.get(key(), unrevisable) is None
    cache.put(key(), answer(cache.mark()))
    assert len(cache) == 0


def test_the_least_recently_used_answers_go_first_when_full() -> None:
    one = answer(0)
    cache = SlotCache(max_bytes=one.weight() * 2)
    cache.put(key("a"), answer(cache.mark()))
    cache.put(key("b"), answer(cache.mark()))
    assert cache.get(key("a"), unrevisable) is not None  # a is now the most recently used
    cache.put(key("c"), answer(cache.mark()))
    assert cache.get(key("b"), unrevisable) is None
    assert cache.get(key("a"), unrevisable) is not None
    assert cache.get(key("c"), unrevisable) is not None
    cache.put(key("huge"), answer(cache.mark(), items=1000))  # bigger than the whole cache
    assert cache.get(key("huge"), unrevisable) is None
    assert len(cache) == 2


def test_the_body_is_cut_to_the_policy_at_each_now() -> None:
    cached = answer(0, items=4)  # slots at now, +1 h, +2 h, +3 h; notice: 1 h
    assert cached.body(NOW) == b'{"slots":["1","2","3"]}'
    assert cached.body(NOW + timedelta(hours=2, seconds=1)) == b'{"slots":[]}'
    assert cached.body(NOW + timedelta(hours=2)) == b'{"slots":["3"]}'


def test_each_slots_json_is_what_it_would_serialise_to_alone() -> None:
    zone = ZoneInfo("America/New_York")
    slots: list[Any] = [
        {
            "start_at": datetime(2027, 3, 3, 9, tzinfo=zone) + timedelta(hours=hour),
            "end_at": datetime(2027, 3, 3, 10, tzinfo=zone) + timedelta(hours=hour),
            "date": date(2027, 3, 3),
            "client_start_at": NOW + timedelta(hours=hour) if hour % 2 else None,
            "client_end_at": NOW + timedelta(hours=hour + 1) if hour % 2 else None,
            "seats_left": hour or None,  # a group session's seats, or null
        }
        for hour in range(4)
    ]
    assert _each_json(slots) == [SlotRead(**slot).model_dump_json().encode() for slot in slots]
    assert _each_json([]) == []


def test_a_bookings_change_is_applied_to_the_kept_answer_before_it_is_served() -> None:
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    first, second, elsewhere = moved(), moved(), moved(uuid.uuid4())
    cache.moved([first])
    cache.moved([elsewhere, second])  # another provider's: not given to this answer
    given: list[list[Moved]] = []

    def revise(kept: SlotAnswer, moves: list[Moved]) -> SlotAnswer:
        given.append(moves)
        return answer(kept.marked_at, items=1)

    revised = cache.get(key(), revise)
    assert given == [[first, second]]  # in the order heard, all at once
    assert revised is not None
    assert revised.items == [b'"0"']
    assert cache.get(key(), unrevisable) is revised  # applied once, kept applied


def test_a_bookings_change_during_the_reads_is_not_kept() -> None:
    """An answer being computed may or may not have read the change: it is not kept (an
    answer already kept applies the change instead)."""
    cache = SlotCache(max_bytes=10_000)
    marked_at = cache.mark()
    cache.moved([moved()])
    cache.put(key(), answer(marked_at))
    assert cache.get(key(), unrevisable) is None
    assert not cache.is_current(answer(marked_at))
    cache.put(key(), answer(cache.mark()))  # read after the change: kept
    assert cache.get(key(), unrevisable) is not None


def test_a_change_to_the_hours_voids_an_answer_with_changes_to_apply() -> None:
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    cache.moved([moved()])
    cache.changed([PROVIDER])
    assert cache.get(key(), unrevisable) is None
    cache.put(key(), answer(cache.mark()))
    cache.moved([moved()])
    cache.flush()
    assert cache.get(key(), unrevisable) is None


def test_an_answer_left_with_too_many_changes_to_apply_is_dropped() -> None:
    """One not asked for while its provider is booked again and again is computed afresh
    when it is, rather than kept with its changes piling up."""
    cache = SlotCache(max_bytes=10_000)
    cache.put(key(), answer(cache.mark()))
    for _ in range(MAX_PENDING):
        cache.moved([moved()])
    assert len(cache) == 1
    cache.moved([moved()])
    assert len(cache) == 0
    assert cache.get(key(), unrevisable) is None


def test_every_change_is_told_to_whoever_follows_the_cache() -> None:
    """The live listings follow the cache: each change, by whose, or everything."""
    cache = SlotCache(max_bytes=10_000)
    told: list[set[uuid.UUID] | None] = []
    cache.on_change = lambda ids: told.append(None if ids is None else set(ids))
    other = uuid.uuid4()
    cache.changed(iter([USER]))  # a one-shot iterable is read once
    cache.moved([moved(), moved(other)])
    cache.flush()
    assert told == [{USER}, {PROVIDER, other}, None]

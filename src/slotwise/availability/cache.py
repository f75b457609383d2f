"""Slot answers kept in memory: voided the moment the hours behind them change, brought up
to date by the bookings that change their busy time.

A slot listing is read far more often than a provider's hours or bookings change, so each
worker keeps the answers it has computed: the JSON of every slot, computed once without a
clock (`slots_within(now=None)`), and cut to the booking policy at each request's `now`
(`bookable_range`), so an answer stays right as time passes.

Correctness rests on one rule: an answer is used only if nothing it was computed from has
changed since its reads began, or the change has been applied to it. A counter ticks on
every change; an answer records the count before its first read (`mark`).

- A change to hours, services, the profile or the account (`changed`) records the count for
  the provider (or user) it touched; an answer is valid while no such change to its
  provider or its provider's user, and no flush, is newer than its mark.
- A change to an appointment (`moved`) comes with the appointment as the change left it
  (`availability.busy.Moved`). Each kept answer of its provider is given the change, and
  applies it (`revise`) before it is next served: it keeps the appointments it counted by
  id, so applying a change twice, or one it had already read, is harmless. Changes are
  given in the order they were heard, and the database's notices, which come for every
  commit in commit order, end every sequence, so a kept answer ends as a fresh one would.
  An answer being computed when a booking's change is heard may or may not have read it:
  it is not kept (`put`).

A change that lands while an answer is being computed therefore never goes missing, even if
its reads missed it. `slotwise.availability.changes` reports the changes: this process's
commits, other processes' commits, or a lost connection to the feed of them (which disables
the cache until the feed is back).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from slotwise import scheduling
from slotwise.availability.busy import Moved, Taken
from slotwise.scheduling import BookingPolicy, bookable_range

if TYPE_CHECKING:
    from slotwise.availability.schedules import Schedule


# Changes a kept answer may wait to apply; past that it is dropped, and computed afresh when
# it is next asked for (one read, where applying them all would cost more).
MAX_PENDING = 64


@dataclass(frozen=True, slots=True)
class SlotKey:
    """A slot query as asked: the provider reference is as given (handle, id or user id)."""

    ref: str
    first: date
    last: date
    service_id: uuid.UUID | None
    slot_duration: int | None
    tz: str | None


@dataclass(frozen=True, slots=True)
class Basis:
    """What an answer's slots were computed from: the provider's schedule, the offering, the
    open hours of the window, the instants its busy time was read for (``reach``, None:
    nothing open) and its limits counted in (``counted``, None: no day or week limit), and
    the appointments read, by id. A booking's change replaces one of them
    (`SlotListings.revised`)."""

    schedule: Schedule
    spec: scheduling.ServiceSpec
    opened: list[scheduling.Interval]
    reach: scheduling.Interval | None
    counted: tuple[datetime, datetime] | None
    taken: dict[str, Taken]  # by `availability.busy.key`
    # The busy time of the provider's own calendars within ``reach`` (merged instants).
    calendar_busy: tuple[scheduling.Interval, ...] = ()

    def concerns(self, taken: Taken) -> bool:
        """Whether an appointment can move these slots: its blocked span reaches the open
        hours, or the limits count it."""
        reach, counted = self.reach, self.counted
        return (
            reach is not None
            and taken.blocked_start_at < reach.end_at
            and taken.blocked_end_at > reach.start_at
        ) or (
            counted is not None
            and taken.start_at is not None
            and counted[0] <= taken.start_at < counted[1]
        )


@dataclass(frozen=True, slots=True)
class SlotAnswer:
    """A computed slot listing: the response body around the JSON of each slot."""

    key: SlotKey
    provider_id: uuid.UUID
    user_id: uuid.UUID
    policy: BookingPolicy
    starts_at: list[datetime]  # sorted, UTC: one per item
    seats_left: list[int | None]  # one per item (None: not a group service)
    head: bytes
    items: list[bytes]
    tail: bytes
    marked_at: int  # the change count before its reads began (`SlotCache.mark`)
    # When the first guest's hold it counted as busy ends (None: none): from then on the
    # listing is out of date, though nothing was written.
    until: datetime | None
    basis: Basis

    def holds_at(self, now: datetime) -> bool:
        """Whether the listing still stands at ``now`` (no hold it counted has ended)."""
        return self.until is None or now < self.until

    def body(self, now: datetime) -> bytes:
        """The response at `now`: only the slots the booking policy admits then."""
        admitted = self.items[bookable_range(self.starts_at, self.policy, now)]
        return self.head + b",".join(admitted) + self.tail

    def weight(self) -> int:
        """Roughly its bytes in memory: the JSON, and what it was computed from."""
        kept = len(self.basis.opened) * 120 + len(self.basis.taken) * 250
        return len(self.head) + len(self.tail) + sum(len(item) + 80 for item in self.items) + kept


class SlotCache:
    """Per-process, bounded by bytes (least recently used answers go first)."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.enabled = True
        self._answers: OrderedDict[SlotKey, SlotAnswer] = OrderedDict()
        self._weights: dict[SlotKey, int] = {}
        self._bytes = 0
        self._count = 0
        self._flushed_at = 0
        self._changed_at: dict[uuid.UUID, int] = {}  # provider or user id -> its last change
        self._moved_at: dict[uuid.UUID, int] = {}  # provider id -> its last booking's change
        self._keys_of: dict[uuid.UUID, set[SlotKey]] = {}  # provider id -> its kept answers
        self._pending: dict[SlotKey, list[Moved]] = {}  # changes a kept answer is yet to apply
        # Told of every change too, by whose (None: anything), e.g. the live listings.
        self.on_change: Callable[[Iterable[uuid.UUID] | None], None] | None = None

    def mark(self) -> int:
        """Call before reading what an answer is computed from; give it to `put`."""
        return self._count

    def get(
        self, key: SlotKey, revise: Callable[[SlotAnswer, list[Moved]], SlotAnswer]
    ) -> SlotAnswer | None:
        """The kept answer, with the bookings' changes given to it since applied by
        ``revise`` (None: none kept, or voided)."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        if not self.enabled or not self._kept(answer):
            self._drop(key)
            return None
        pending = self._pending.pop(key, None)
        if pending:
            answer = revise(answer, pending)
            self._keep(key, answer)
        else:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: SlotKey, answer: SlotAnswer) -> None:
        """Keep a computed answer, unless something changed after its reads began."""
        if self.enabled and self._fresh(answer):
            self._keep(key, answer)

    def _keep(self, key: SlotKey, answer: SlotAnswer) -> None:
        weight = answer.weight()
        self._drop(key)
        if weight > self.max_bytes:
            return
        self._answers[key] = answer
        self._weights[key] = weight
        self._bytes += weight
        self._keys_of.setdefault(answer.provider_id, set()).add(key)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._answers)))

    def changed(self, ids: Iterable[uuid.UUID]) -> None:
        """Providers (or users) whose schedule, profile or account changed."""
        self._count += 1
        ids = list(ids)
        for changed_id in ids:
            self._changed_at[changed_id] = self._count
        if self.on_change is not None and ids:
            self.on_change(ids)

    def moved(self, changes: Iterable[Moved]) -> None:
        """Appointments changed: each kept answer of their providers applies the change
        before it is next served; an answer being computed is not kept."""
        changes = list(changes)
        self._count += 1
        for change in changes:
            self._moved_at[change.provider_id] = self._count
            for key in list(self._keys_of.get(change.provider_id, ())):
                pending = self._pending.setdefault(key, [])
                pending.append(change)
                if len(pending) > MAX_PENDING:  # not asked for in a while: computed when it is
                    self._drop(key)
        if self.on_change is not None:
            self.on_change({change.provider_id for change in changes})

    def flush(self) -> None:
        """Something changed, it is not known what: every answer is out of date."""
        self._count += 1
        self._flushed_at = self._count
        if self.on_change is not None:
            self.on_change(None)
        self._answers.clear()
        self._weights.clear()
        self._keys_of.clear()
        self._pending.clear()
        self._bytes = 0

    def is_current(self, answer: SlotAnswer) -> bool:
        """Whether nothing `answer` was computed from has changed since."""
        return self.enabled and self._fresh(answer)

    def __len__(self) -> int:
        return len(self._answers)

    def _kept(self, answer: SlotAnswer) -> bool:
        """No change it cannot apply (to hours, profile, account; a flush) since its mark."""
        marked_at = answer.marked_at
        changed_at = self._changed_at
        return (
            marked_at >= self._flushed_at
            and changed_at.get(answer.provider_id, 0) <= marked_at
            and changed_at.get(answer.user_id, 0) <= marked_at
        )

    def _fresh(self, answer: SlotAnswer) -> bool:
        """No change at all since its mark: nothing it read can have missed one."""
        return self._kept(answer) and self._moved_at.get(answer.provider_id, 0) <= answer.marked_at

    def _drop(self, key: SlotKey) -> None:
        answer = self._answers.pop(key, None)
        if answer is not None:
            self._bytes -= self._weights.pop(key)
            self._pending.pop(key, None)
            keys = self._keys_of.get(answer.provider_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[answer.provider_id]

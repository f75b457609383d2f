"""Slot answers kept in memory and dropped the moment the schedule behind them changes.

A slot listing is read far more often than a provider's hours or bookings change, so each
worker keeps the answers it has computed: the JSON of every slot, computed once without a
clock (`slots_within(now=None)`), and cut to the booking policy at each request's `now`
(`bookable_range`), so an answer stays right as time passes.

Correctness rests on one rule: an answer is used only if nothing it was computed from has
changed since its reads began. A counter ticks on every change; an answer records the count
before its first read (`mark`), every change records the count for the provider (or user)
it touched, and an answer is valid while no change to its provider or its provider's user,
and no flush, is newer than its mark. A change that lands while an answer is being computed
therefore invalidates it even if its reads missed the change. `slotwise.availability.changes`
reports the changes: this process's commits, other processes' commits, or a lost connection
to the feed of them (which disables the cache until the feed is back).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from slotwise.scheduling import BookingPolicy, bookable_range


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
class SlotAnswer:
    """A computed slot listing: the response body around the JSON of each slot."""

    provider_id: uuid.UUID
    user_id: uuid.UUID
    policy: BookingPolicy
    starts_at: list[datetime]  # sorted, UTC: one per item
    head: bytes
    items: list[bytes]
    tail: bytes
    marked_at: int  # the change count before its reads began (`SlotCache.mark`)
    # When the first guest's hold it counted as busy ends (None: none): from then on the
    # listing is out of date, though nothing was written.
    until: datetime | None = None

    def holds_at(self, now: datetime) -> bool:
        """Whether the listing still stands at ``now`` (no hold it counted has ended)."""
        return self.until is None or now < self.until

    def body(self, now: datetime) -> bytes:
        """The response at `now`: only the slots the booking policy admits then."""
        admitted = self.items[bookable_range(self.starts_at, self.policy, now)]
        return self.head + b",".join(admitted) + self.tail

    def weight(self) -> int:
        return len(self.head) + len(self.tail) + sum(len(item) + 80 for item in self.items) + 200


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

    def mark(self) -> int:
        """Call before reading what an answer is computed from; give it to `put`."""
        return self._count

    def get(self, key: SlotKey) -> SlotAnswer | None:
        answer = self._answers.get(key)
        if answer is None:
            return None
        if not self.enabled or not self._fresh(answer):
            self._drop(key)
            return None
        self._answers.move_to_end(key)
        return answer

    def put(self, key: SlotKey, answer: SlotAnswer) -> None:
        weight = answer.weight()
        if not self.enabled or not self._fresh(answer) or weight > self.max_bytes:
            return
        self._drop(key)
        self._answers[key] = answer
        self._weights[key] = weight
        self._bytes += weight
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._answers)))

    def changed(self, ids: Iterable[uuid.UUID]) -> None:
        """Providers (or users) whose schedule, profile or account changed."""
        self._count += 1
        for changed_id in ids:
            self._changed_at[changed_id] = self._count

    def flush(self) -> None:
        """Something changed, it is not known what: every answer is out of date."""
        self._count += 1
        self._flushed_at = self._count
        self._answers.clear()
        self._weights.clear()
        self._bytes = 0

    def is_current(self, answer: SlotAnswer) -> bool:
        """Whether nothing `answer` was computed from has changed since."""
        return self.enabled and self._fresh(answer)

    def __len__(self) -> int:
        return len(self._answers)

    def _fresh(self, answer: SlotAnswer) -> bool:
        marked_at = answer.marked_at
        changed_at = self._changed_at
        return (
            marked_at >= self._flushed_at
            and changed_at.get(answer.provider_id, 0) <= marked_at
            and changed_at.get(answer.user_id, 0) <= marked_at
        )

    def _drop(self, key: SlotKey) -> None:
        if self._answers.pop(key, None) is not None:
            self._bytes -= self._weights.pop(key)

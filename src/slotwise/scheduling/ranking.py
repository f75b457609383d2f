"""Which of the offered slots to suggest first: a score per slot, and the reasons for it.

Ranking only orders: it is given the slots a listing offers and answers the same slots,
each with a score and its reasons (a property test holds it to that). Every rule is a
weighted term, its weight a setting (`RankingWeights`; 0 turns a rule off):

- **adjacent**: the slot touches a booking of the provider's (its blocked time begins where
  one ends, or ends where one begins): days stay packed, free time stays whole;
- **preferred**: the client's usual weekdays and hours, from their past bookings (the share
  of them on the slot's weekday, and at its hour of day, those an hour away counting half);
- **earlier**: sooner is better, falling linearly from the first date asked for to the last;
- **balance**: among providers (a team's members, a search's providers), those with fewer
  bookings in the window (a team member's counted per unit of their round-robin weight);
- **no_show** (a penalty): hours of the day and lead times at which this client missed more
  of their appointments.

A learned model (`scheduling.ranking_model`) may replace the weighted sum with its own
score of the same features; the reasons are the rules' either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slotwise.scheduling.intervals import Interval

HOUR = timedelta(hours=1)
# Lead time buckets, in days ahead, for the no-show rule: same or next day, within a week,
# later.
LEAD_BUCKETS = (2, 8)
USUAL = 0.75  # the share of the client's past bookings at an hour that makes it "usual"


@dataclass(frozen=True, slots=True)
class RankingWeights:
    adjacent: float = 3.0
    preferred: float = 2.0
    earlier: float = 1.0
    balance: float = 1.0
    no_show: float = 2.0


@dataclass(frozen=True, slots=True)
class Offered:
    """A slot offered, with what its rules read: the provider's zone, name and bookings
    (blocked spans) around it, and the provider's load (their bookings in the window; per
    unit of weight where the provider has one, as a round-robin team's member does)."""

    start_at: datetime
    end_at: datetime
    blocked: Interval
    zone: ZoneInfo
    provider: str  # the provider's name, for the reasons
    busy: tuple[Interval, ...] = ()
    load: float = 0


@dataclass(frozen=True, slots=True)
class Past:
    """One of the client's past appointments: when (its provider's zone's wall time), how far
    ahead it was booked, and whether they came."""

    start_at: datetime
    zone: ZoneInfo
    booked_at: datetime
    no_show: bool


@dataclass(frozen=True, slots=True)
class History:
    """The client's past appointments (none for a guest or a first-timer)."""

    past: tuple[Past, ...] = ()
    _weekdays: Counter[int] = field(default_factory=Counter, compare=False, repr=False)
    _hours: Counter[int] = field(default_factory=Counter, compare=False, repr=False)

    def __post_init__(self) -> None:
        for one in self.past:
            local = one.start_at.astimezone(one.zone)
            self._weekdays[local.weekday()] += 1
            self._hours[local.hour] += 1


@dataclass(frozen=True, slots=True)
class Features:
    """What the rules (and a learned model) read of one slot, each in 0..1."""

    adjacent: float
    preferred_day: float
    preferred_hour: float
    earlier: float
    balance: float
    no_show: float

    def as_list(self) -> list[float]:
        return [
            self.adjacent,
            self.preferred_day,
            self.preferred_hour,
            self.earlier,
            self.balance,
            self.no_show,
        ]


FEATURE_NAMES = ("adjacent", "preferred_day", "preferred_hour", "earlier", "balance", "no_show")


@dataclass(frozen=True, slots=True)
class Ranked:
    slot: Offered
    score: float
    reasons: tuple[str, ...]
    features: Features


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def features(
    slot: Offered,
    history: History,
    *,
    first: date,
    last: date,
    most_load: float,
    now: datetime,
) -> Features:
    """The slot's features: see the module's rules."""
    local = slot.start_at.astimezone(slot.zone)
    sides = sum(
        1
        for busy in slot.busy
        if busy.end_at == slot.blocked.start_at or busy.start_at == slot.blocked.end_at
    )
    past = history.past
    count = len(past)
    preferred_day = history._weekdays[local.weekday()] / count if count else 0.0
    hours = history._hours
    near = hours[local.hour] + (hours[local.hour - 1] + hours[local.hour + 1]) / 2
    preferred_hour = near / count if count else 0.0
    span = max((last - first).days, 1)
    earlier = max(0.0, 1.0 - (local.date() - first).days / span)
    balance = 1.0 - slot.load / most_load if most_load else 0.0
    return Features(
        adjacent=sides / 2,
        preferred_day=preferred_day,
        preferred_hour=preferred_hour,
        earlier=earlier,
        balance=balance,
        no_show=_missed_share(slot, history, now),
    )


def _lead_bucket(days: float) -> int:
    return sum(1 for edge in LEAD_BUCKETS if days >= edge)


def _missed_share(slot: Offered, history: History, now: datetime) -> float:
    """The share of the client's past appointments at this hour of day (±1) and this lead
    time that they missed: 0 without at least two such appointments."""
    hour = slot.start_at.astimezone(slot.zone).hour
    lead = _lead_bucket((slot.start_at - now) / timedelta(days=1))
    alike = [
        one
        for one in history.past
        if abs(one.start_at.astimezone(one.zone).hour - hour) <= 1
        and _lead_bucket((one.start_at - one.booked_at) / timedelta(days=1)) == lead
    ]
    if len(alike) < 2:
        return 0.0
    return sum(one.no_show for one in alike) / len(alike)


def rank(
    slots: Sequence[Offered],
    history: History,
    weights: RankingWeights,
    *,
    first: date,
    last: date,
    now: datetime,
    model: Scorer | None = None,
) -> list[Ranked]:
    """Every slot given, best first (ties: the earlier), with its score and reasons; the
    score is the weighted sum of its features, or ``model``'s when one is given."""
    most_load = max((slot.load for slot in slots), default=0)
    ranked = []
    for slot in slots:
        found = features(slot, history, first=first, last=last, most_load=most_load, now=now)
        score = model.score(found) if model is not None else weighted(found, weights)
        ranked.append(Ranked(slot, round(score, 4), reasons(slot, found, weights), found))
    ranked.sort(key=lambda one: (-one.score, one.slot.start_at, one.slot.provider))
    return ranked


def weighted(found: Features, weights: RankingWeights) -> float:
    return (
        weights.adjacent * found.adjacent
        + weights.preferred * (found.preferred_day + found.preferred_hour) / 2
        + weights.earlier * found.earlier
        + weights.balance * found.balance
        - weights.no_show * found.no_show
    )


@dataclass(frozen=True, slots=True)
class Scorer:
    """A learned score of a slot's features: a logistic model's log-odds that the client
    picks the slot (``slotwise train-ranking`` fits it; the coefficients follow
    `FEATURE_NAMES`). Higher is better, as the rules' sum."""

    version: str
    coefficients: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(FEATURE_NAMES):
            raise ValueError(f"{len(FEATURE_NAMES)} coefficients expected")

    def score(self, found: Features) -> float:
        values = found.as_list()
        return self.intercept + sum(c * v for c, v in zip(self.coefficients, values, strict=True))


def reasons(slot: Offered, found: Features, weights: RankingWeights) -> tuple[str, ...]:
    """Why, in words, for the rules that count (weight above 0) and apply to the slot."""
    local = slot.start_at.astimezone(slot.zone)
    said: list[str] = []
    if weights.adjacent > 0 and found.adjacent > 0:
        said.append(f"right next to another booking: keeps {slot.provider}'s day without gaps")
    usual_hour = found.preferred_hour >= USUAL
    if weights.preferred > 0 and found.preferred_day >= 0.5 and usual_hour:
        said.append(f"your usual {WEEKDAYS[local.weekday()]} time")
    elif weights.preferred > 0 and found.preferred_day >= 0.5:
        said.append(f"you usually book on {WEEKDAYS[local.weekday()]}s")
    elif weights.preferred > 0 and usual_hour:
        said.append("about the time of day you usually book")
    if weights.earlier > 0 and found.earlier >= 0.99:
        said.append("among the soonest")
    if weights.balance > 0 and found.balance > 0 and found.balance >= 0.5:
        said.append(f"{slot.provider} has fewer bookings than the others")
    if weights.no_show > 0 and found.no_show >= 0.5:
        said.append("ranked lower: you missed many appointments at this time")
    return tuple(said)

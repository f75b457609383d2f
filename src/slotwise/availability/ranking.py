"""Suggested slots: a listing's own slots, ordered by `scheduling.ranking`.

The slots are the listing's answer (`SlotListings.answer`, from the slot cache), cut to the
booking policy at `now`; the rules read what the answer was computed from (its bookings'
blocked spans, its offering's buffers) and the client's history, which booking provides
(availability sits below booking: `HistoryReader`, wired by the app factory). Ranking
never adds a slot: it orders the ones the listing offers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise import scheduling
from slotwise.availability import busy as busy_time
from slotwise.availability.cache import SlotAnswer
from slotwise.availability.schemas import SlotQuery
from slotwise.availability.slots import SlotListings, window
from slotwise.scheduling import ranking

log = structlog.get_logger(__name__)

# A client's history: their past appointments, by their client key (None: no one's).
HistoryReader = Callable[[AsyncSession, str, datetime], Awaitable[ranking.History]]
MODEL_FORMAT = "slotwise-ranking"


@dataclass(frozen=True, slots=True)
class Ranker:
    """The rules' weights, and the learned model that replaces their sum, if one is loaded."""

    weights: ranking.RankingWeights
    model: ranking.Scorer | None = None

    @property
    def ranked_by(self) -> str:
        return "rules" if self.model is None else f"model:{self.model.version}"

    def rank(
        self,
        slots: list[ranking.Offered],
        history: ranking.History,
        *,
        first: date,
        last: date,
        now: datetime,
    ) -> list[ranking.Ranked]:
        return ranking.rank(
            slots, history, self.weights, first=first, last=last, now=now, model=self.model
        )


def load_model(path: str | None) -> ranking.Scorer | None:
    """The model file written by ``slotwise train-ranking`` (JSON: its format, version,
    feature names and coefficients), or None: no path, no file, or a file this version
    cannot read (logged), and the rules rank."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != MODEL_FORMAT or tuple(data["features"]) != ranking.FEATURE_NAMES:
            raise ValueError("not a model of this version's features")
        coefficients = tuple(float(c) for c in data["coefficients"])
        intercept = float(data["intercept"])
        if not all(math.isfinite(c) for c in (*coefficients, intercept)):
            raise ValueError("a coefficient is not finite")
        return ranking.Scorer(str(data["version"]), coefficients, intercept)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ranking_model_not_loaded", path=path, error=str(error))
        return None


def offered(
    answer: SlotAnswer, lo: int, hi: int, now: datetime, name: str
) -> list[ranking.Offered]:
    """The answer's slots ``lo:hi`` as the rules read them: each with the provider's bookings
    (blocked spans) in the window, and their count (the provider's load)."""
    basis = answer.basis
    spec = basis.spec
    reach = basis.reach
    spans: tuple[scheduling.Interval, ...] = ()
    if reach is not None:
        spans = tuple(
            scheduling.Interval(start, end)
            for start, end in sorted(
                busy_time.spans(basis.taken.values(), reach.start_at, reach.end_at, now)
            )
        )
    zone = basis.schedule.zone
    found = []
    for index in range(lo, hi):
        start_at = answer.starts_at[index]
        end_at = start_at + spec.duration
        blocked = scheduling.Interval(start_at - spec.buffer_before, end_at + spec.buffer_after)
        found.append(ranking.Offered(start_at, end_at, blocked, zone, name, spans, len(spans)))
    return found


def scored(item: bytes, ranked: ranking.Ranked) -> bytes:
    """A slot's JSON with its score and reasons."""
    return b"".join(
        (
            item[:-1],
            b',"score":',
            json.dumps(ranked.score).encode(),
            b',"reasons":',
            json.dumps(list(ranked.reasons)).encode(),
            b"}",
        )
    )


async def suggestions(
    listings: SlotListings,
    *,
    ref: str,
    query: SlotQuery,
    history: ranking.History,
    ranker: Ranker,
    limit: int,
    now: datetime,
) -> bytes:
    """The best ``limit`` of the provider's open slots for this client, as JSON."""
    first, last = window(query.on_date, query.first, query.last)
    answer = await listings.answer(ref, query, now)
    admitted = scheduling.bookable_range(answer.starts_at, answer.policy, now)
    schedule = answer.basis.schedule
    slots = offered(
        answer, admitted.start, admitted.stop, now, schedule.full_name or schedule.public_handle
    )
    best = ranker.rank(slots, history, first=first, last=last, now=now)[:limit]
    index = {start_at: i for i, start_at in enumerate(answer.starts_at)}
    items = [scored(answer.items[index[one.slot.start_at]], one) for one in best]
    head = {
        "provider_id": str(schedule.provider_id),
        "public_handle": schedule.public_handle,
        "timezone": schedule.timezone,
        "client_timezone": query.tz,
        "service_id": str(query.service_id) if query.service_id else None,
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
        "ranked_by": ranker.ranked_by,
    }
    return json.dumps(head).encode()[:-1] + b',"suggestions":[' + b",".join(items) + b"]}"

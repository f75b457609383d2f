"""``slotwise train-ranking``: a model of which offered slot a client picks, fitted on the
appointment history, and its evaluation against the rules and earliest-first.

Slotwise does not record what a client was shown, so each past booking's choice is
reconstructed: the slots its provider's weekly hours give from three days before the
picked date to three days after, later than the moment it was booked, free of the
provider's bookings made before that moment (by anyone). The one picked is the positive
case, the others negatives; each slot's features are the rules' (`scheduling.ranking`),
read as of the booking's moment (the client's appointments before it, the provider's
bookings before it). A logistic regression (scikit-learn, the optional extra
``slotwise[ranking]``) fits the chance that a slot is the one picked; its coefficients are
written as a JSON file that the application reads without scikit-learn
(`availability.ranking.load_model`).

Evaluation holds out the latest bookings (by when they were made: the model is fitted on the
past and judged on the future) and reports, for each way of ordering, how often the slot
the client picked is among the first three.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from slotwise import scheduling
from slotwise.availability.models import WeeklyPattern
from slotwise.availability.schedules import weekly_rules
from slotwise.booking.models import Appointment, Status
from slotwise.db import Database
from slotwise.providers.models import Provider
from slotwise.scheduling import ranking

AROUND = timedelta(days=3)
TOP = 3
MODEL_FORMAT = "slotwise-ranking"
# What a past booking is: it took place, was missed, or is still on (not called off).
BOOKED = (Status.COMPLETED, Status.NO_SHOW, Status.CONFIRMED, Status.PENDING)


@dataclass(frozen=True)
class Case:
    """One past booking's choice: the slots offered then, and which was picked."""

    booked_at: datetime
    starts: list[datetime]
    features: list[ranking.Features]
    picked: int


class ExtraMissing(RuntimeError):
    pass


async def cases(database: Database, *, now: datetime) -> list[Case]:
    """Every reconstructable choice of the history, by when it was made."""
    async with database.session(writes=False) as session:
        providers = {p.id: p for p in await session.scalars(select(Provider))}
        patterns: dict[object, list[WeeklyPattern]] = defaultdict(list)
        for pattern in await session.scalars(select(WeeklyPattern).where(WeeklyPattern.is_active)):
            patterns[pattern.provider_id].append(pattern)
        rows = (
            await session.execute(
                select(
                    Appointment.provider_id,
                    Appointment.client_key,
                    Appointment.start_at,
                    Appointment.blocked_start_at,
                    Appointment.blocked_end_at,
                    Appointment.created_at,
                    Appointment.status,
                    Appointment.service_id,
                ).where(Appointment.status.in_(BOOKED), Appointment.start_at < now)
            )
        ).all()
    by_provider: dict[object, list[tuple[datetime, scheduling.Interval]]] = defaultdict(list)
    by_client: dict[str, list[ranking.Past]] = defaultdict(list)
    for row in rows:
        provider = providers[row.provider_id]
        zone = ZoneInfo(provider.timezone)
        by_provider[row.provider_id].append(
            (row.created_at, scheduling.Interval(row.blocked_start_at, row.blocked_end_at))
        )
        by_client[row.client_key].append(
            ranking.Past(row.start_at, zone, row.created_at, row.status is Status.NO_SHOW)
        )
    found = []
    for row in sorted(rows, key=lambda r: r.created_at):
        if row.service_id is not None or row.provider_id not in patterns:
            continue  # the default session only: a service's slots differ
        case = _case(
            row,
            providers[row.provider_id],
            weekly_rules(patterns[row.provider_id]),
            by_provider[row.provider_id],
            by_client[row.client_key],
        )
        if case is not None:
            found.append(case)
    return found


def _case(
    row: object,
    provider: Provider,
    weekly: list[scheduling.WeeklyRule],
    bookings: list[tuple[datetime, scheduling.Interval]],
    past: list[ranking.Past],
) -> Case | None:
    zone = ZoneInfo(provider.timezone)
    booked_at: datetime = row.created_at  # type: ignore[attr-defined]
    picked_at: datetime = row.start_at  # type: ignore[attr-defined]
    spec = scheduling.ServiceSpec(
        duration=timedelta(minutes=provider.session_duration_minutes),
        interval=timedelta(
            minutes=provider.slot_interval_minutes or provider.session_duration_minutes
        ),
    )
    day = picked_at.astimezone(zone).date()
    first, last = day - AROUND, day + AROUND
    known = [span for made_at, span in bookings if made_at < booked_at]
    offered = [
        slot
        for slot in scheduling.compute_slots(
            zone=zone,
            start_date=first,
            end_date=last,
            weekly=weekly,
            overrides=[],
            time_off=[],
            service=spec,
            busy=known,
            now=None,
        )
        if slot.start_at > booked_at
    ]
    starts = [slot.start_at for slot in offered]
    if picked_at not in starts or len(starts) < 2:
        return None
    history = ranking.History(tuple(p for p in past if p.start_at < booked_at))
    features = [
        ranking.features(
            ranking.Offered(
                slot.start_at,
                slot.end_at,
                scheduling.Interval(slot.start_at, slot.end_at),
                zone,
                provider.public_handle,
                tuple(known),
            ),
            history,
            first=max(first, booked_at.astimezone(zone).date()),
            last=last,
            most_load=0,
            now=booked_at,
        )
        for slot in offered
    ]
    return Case(booked_at, starts, features, starts.index(picked_at))


def split(found: list[Case], holdout: float) -> tuple[list[Case], list[Case]]:
    """The earlier bookings to fit on, the later ones (``holdout`` of them) to judge on."""
    cut = int(len(found) * (1 - holdout))
    return found[:cut], found[cut:]


def fit(training: list[Case], *, version: str) -> ranking.Scorer:
    """A logistic regression of "picked" on the features (scikit-learn)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:  # the optional extra
        raise ExtraMissing(
            "train-ranking needs the extra: pip install 'slotwise[ranking]'"
        ) from error
    rows = [one.as_list() for case in training for one in case.features]
    labels = [int(i == case.picked) for case in training for i in range(len(case.features))]
    model = LogisticRegression(max_iter=2000)
    model.fit(rows, labels)
    return ranking.Scorer(
        version,
        tuple(float(c) for c in model.coef_[0]),
        float(model.intercept_[0]),
    )


def _hit(case: Case, scores: list[float]) -> bool:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], case.starts[i]))
    return case.picked in order[:TOP]


def evaluate(held_out: list[Case], model: ranking.Scorer | None) -> dict[str, float]:
    """How often the picked slot is in the first three: rules, model, earliest first."""
    weights = ranking.RankingWeights()
    tallies = {"earliest first": 0, "rules": 0, "model": 0}
    for case in held_out:
        tallies["earliest first"] += case.picked < TOP
        tallies["rules"] += _hit(case, [ranking.weighted(f, weights) for f in case.features])
        if model is not None:
            tallies["model"] += _hit(case, [model.score(f) for f in case.features])
    count = max(len(held_out), 1)
    rates = {name: hits / count for name, hits in tallies.items()}
    if model is None:
        del rates["model"]
    return rates


def write(
    model: ranking.Scorer, path: Path, *, trained_on: int, held_out: dict[str, float]
) -> None:
    path.write_text(
        json.dumps(
            {
                "format": MODEL_FORMAT,
                "version": model.version,
                "features": list(ranking.FEATURE_NAMES),
                "coefficients": list(model.coefficients),
                "intercept": model.intercept,
                "trained_on_bookings": trained_on,
                "held_out_top3": held_out,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


def version_of(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S")

"""Evaluation of the slot ranking: `uv run --extra ranking python bench/eval_ranking.py`.

On a fresh SQLite database: the demo (`slotwise demo`) and its simulated history
(`slotwise demo --history`: 60 clients with habits, half a year, about 700 bookings;
src/slotwise/demo_history.py describes the population), every booking's choice
reconstructed (`slotwise.ranking_training.cases`), the earliest 80% (by when they were
made) to fit the model on, the latest 20% held out. For each held-out booking, three ways of
ordering the slots offered then: earliest first, the rules (default weights), the model.
Reported: how often the slot the client picked is among the first three (docs/benchmarks.md,
"Ranking"). Deterministic: the simulation has a fixed seed, the model a deterministic fit.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from slotwise import migrate
from slotwise import ranking_training as training
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.demo import populate
from slotwise.demo_history import simulate

HOLDOUT = 0.2


async def evaluate(url: str, now: datetime) -> dict[str, object]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        secret_key="eval-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )
    await populate(settings, now=now)
    database = Database(url, pool_size=1)
    try:
        written = await simulate(database, now=now)
        found = await training.cases(database, now=now)
    finally:
        await database.dispose()
    earlier, later = training.split(found, HOLDOUT)
    model = training.fit(earlier, version="eval")
    return {
        "bookings_written": written,
        "choices": len(found),
        "fitted_on": len(earlier),
        "held_out": len(later),
        "offered_per_choice": round(sum(len(c.starts) for c in later) / max(len(later), 1), 1),
        "top3": training.evaluate(later, model),
        "coefficients": dict(zip(training.ranking.FEATURE_NAMES, model.coefficients, strict=True)),
    }


def main() -> int:
    now = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # the API guide's moment: fixed figures
    with tempfile.TemporaryDirectory(prefix="slotwise-eval-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'eval.db'}"
        migrate.upgrade(url)
        result = asyncio.run(evaluate(url, now))
    print(
        f"{result['bookings_written']} simulated bookings, {result['choices']} choices "
        f"reconstructed; fitted on {result['fitted_on']}, held out the latest "
        f"{result['held_out']} ({result['offered_per_choice']} slots offered on average)"
    )
    print("picked slot in the top 3 (held out):")
    for name, rate in result["top3"].items():  # type: ignore[attr-defined]
        print(f"  {name:<15} {rate:6.1%}")
    print("model coefficients:", {k: round(v, 2) for k, v in result["coefficients"].items()})  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())

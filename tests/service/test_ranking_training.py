"""The learned ranking: `slotwise demo --history`, `slotwise train-ranking`, and a model file
the application loads (scikit-learn, the `ranking` extra, fits it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slotwise import ranking_training as training
from slotwise.availability.ranking import load_model
from slotwise.cli import app as cli
from slotwise.config import get_settings
from slotwise.db import Database
from slotwise.demo_history import simulate
from slotwise.scheduling.ranking import FEATURE_NAMES

pytestmark = pytest.mark.long
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in ("SLOTWISE_DATABASE_URL", "SLOTWISE_SECRET_KEY", "SLOTWISE_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLOTWISE_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("SLOTWISE_ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


async def test_history_train_and_load(workdir: Path) -> None:
    pytest.importorskip("sklearn")
    made = await asyncio.to_thread(runner.invoke, cli, ["demo", "--history"])
    assert made.exit_code == 0, made.output
    assert "Simulated history:" in made.output
    again = await asyncio.to_thread(runner.invoke, cli, ["demo", "--history"])
    assert "Simulated history: 0 past bookings" in again.output  # once only
    trained = await asyncio.to_thread(
        runner.invoke, cli, ["train-ranking", "--out", str(workdir / "model.json")]
    )
    assert trained.exit_code == 0, trained.output
    assert "Picked slot in the top 3:" in trained.output
    for name in ("earliest first", "rules", "model"):
        assert name in trained.output
    written = json.loads((workdir / "model.json").read_text())
    assert written["features"] == list(FEATURE_NAMES)
    assert set(written["held_out_top3"]) == {"earliest first", "rules", "model"}
    model = load_model(str(workdir / "model.json"))
    assert model is not None
    assert model.version == written["version"]
    assert len(model.coefficients) == len(FEATURE_NAMES)


async def test_choices_are_reconstructed_and_judged(workdir: Path) -> None:
    pytest.importorskip("sklearn")
    demo = await asyncio.to_thread(runner.invoke, cli, ["demo"])
    assert demo.exit_code == 0, demo.output
    database = Database(f"sqlite+aiosqlite:///{workdir / 'slotwise.db'}", pool_size=1)
    now = datetime(2026, 11, 21, 14, tzinfo=UTC)
    try:
        written = await simulate(database, now=now)
        found = await training.cases(database, now=now)
    finally:
        await database.dispose()
    assert written > 500
    assert len(found) == written  # every simulated choice can be reconstructed
    for case in found:
        assert 0 <= case.picked < len(case.starts) == len(case.features)
        assert all(start > case.booked_at for start in case.starts)
    assert [c.booked_at for c in found] == sorted(c.booked_at for c in found)
    earlier, later = training.split(found, 0.2)
    model = training.fit(earlier, version="t")
    rates = training.evaluate(later, model)
    assert set(rates) == {"earliest first", "rules", "model"}
    assert all(0 <= rate <= 1 for rate in rates.values())
    # The simulated clients keep to their days and hours: the model learns it.
    assert rates["model"] > rates["earliest first"]
    assert rates["model"] > rates["rules"]


def test_training_without_history_says_so(workdir: Path) -> None:
    migrated = runner.invoke(cli, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    refused = runner.invoke(cli, ["train-ranking"])
    assert refused.exit_code == 1
    assert "Not enough history" in refused.output

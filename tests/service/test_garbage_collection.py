"""The served worker freezes its start-up heap and collects the oldest generation seldom
(main.py's lifespan; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from slotwise.config import Settings
from slotwise.main import GC_THRESHOLDS, create_app


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's collector as it was, afterwards."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_start_up_freezes_the_heap_and_sets_the_thresholds(
    settings: Settings, restored_collector: None
) -> None:
    app = create_app(settings)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # the modules, the app and its routes
        assert gc.get_threshold() == GC_THRESHOLDS

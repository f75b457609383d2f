"""The served worker freezes its start-up heap and collects the oldest generation seldom
(main.py's lifespan; the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import pytest
from fastapi.dependencies.models import Dependant

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


async def test_the_routes_are_built_before_the_heap_is_frozen(
    settings: Settings, restored_collector: None
) -> None:
    # FastAPI builds an included router's routes when a request first looks through it:
    # built after the freeze, they would be walked by every full collection.
    app = create_app(settings)
    gc.unfreeze()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/health")).status_code == 200  # looks through them all
            response = await client.post("/api/v1/appointments/", json={})
            assert response.status_code == 422
        built = [o for o in gc.get_objects() if isinstance(o, Dependant)]
        assert built == []

"""Health checks at the root (outside /api/v1, for load balancers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from slotwise.shared import Shared, SharedDep

router = APIRouter(tags=["health"])

CheckStatus = Literal["ok", "error", "disabled"]
CHECK_TIMEOUT_SECONDS = 2.0


class HealthRead(BaseModel):
    status: Literal["ok", "error"]
    checks: dict[str, CheckStatus]


async def _check_db(app: Shared) -> CheckStatus:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), app.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return "error"
    return "ok"


async def _check_redis(app: Shared) -> CheckStatus:
    if app.redis is None:
        return "disabled"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await app.redis.ping()
    except Exception:
        return "error"
    return "ok"


def _answer(request: Request, checks: dict[str, CheckStatus]) -> Response:
    healthy = all(status != "error" for status in checks.values())
    body = HealthRead(status="ok" if healthy else "error", checks=checks)
    response = JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
    if request.method == "HEAD":  # a load balancer's probe: the GET's status and headers
        return Response(status_code=response.status_code, headers=dict(response.headers))
    return response


_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"model": HealthRead, "description": "A configured dependency is down"}
}


# Each check answers HEAD as GET without the body (load balancers probe with HEAD); HEAD is
# left out of the OpenAPI document, where it would repeat the GET operation's id.
@router.get(
    "/health",
    response_model=HealthRead,
    responses=_UNHEALTHY,
    summary="Overall health: 503 when a configured dependency is down",
)
@router.head("/health", include_in_schema=False)
async def health(request: Request, app: SharedDep) -> Response:
    db, redis = await asyncio.gather(_check_db(app), _check_redis(app))
    return _answer(request, {"db": db, "redis": redis})


@router.get(
    "/health/db", response_model=HealthRead, responses=_UNHEALTHY, summary="Database connectivity"
)
@router.head("/health/db", include_in_schema=False)
async def health_db(request: Request, app: SharedDep) -> Response:
    return _answer(request, {"db": await _check_db(app)})


@router.get(
    "/health/redis",
    response_model=HealthRead,
    responses=_UNHEALTHY,
    summary='Redis connectivity ("disabled" when no Redis is configured)',
)
@router.head("/health/redis", include_in_schema=False)
async def health_redis(request: Request, app: SharedDep) -> Response:
    return _answer(request, {"redis": await _check_redis(app)})


@router.get(
    "/metrics",
    include_in_schema=True,
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

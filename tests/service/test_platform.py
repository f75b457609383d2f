"""Health, metrics, request ids, the error shape, OpenAPI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from slotwise.main import create_app
from tests.conftest import make_settings
from tests.every_route import every_route_documented, hidden_operations


async def test_health_reports_db_and_disabled_redis(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/db", "/health/redis"):
        response = await client.get(f"http://test{path}")
        assert response.status_code == 200, path
    body = (await client.get("http://test/health")).json()
    assert body == {"status": "ok", "checks": {"db": "ok", "redis": "disabled"}}


async def test_health_is_503_when_configured_redis_is_down(database_url: str) -> None:
    app = create_app(make_settings(database_url, redis_url="redis://127.0.0.1:1/0"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        overall = await client.get("/health")
        redis = await client.get("/health/redis")
        db = await client.get("/health/db")
    await app.state.slotwise.db.dispose()
    assert overall.status_code == 503
    assert overall.json()["checks"] == {"db": "ok", "redis": "error"}
    assert redis.status_code == 503
    assert db.status_code == 200


async def test_health_answers_head_as_get_without_a_body(database_url: str) -> None:
    """Load balancers probe with HEAD: the GET's status and headers, no body."""
    for redis_url, status in ((None, 200), ("redis://127.0.0.1:1/0", 503)):
        app = create_app(make_settings(database_url, redis_url=redis_url))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in ("/health", "/health/db", "/health/redis"):
                get = await client.get(path)
                head = await client.head(path)
                assert head.status_code == get.status_code, path
                assert head.content == b"", path
                assert head.headers["content-type"] == "application/json", path
                assert head.headers["content-length"] == str(len(get.content)), path
        await app.state.slotwise.aclose()
        assert get.status_code == status  # /health/redis: ok without Redis, 503 with it down


async def test_health_is_503_when_the_database_is_down() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    app = create_app(make_settings(url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health/db")
    await app.state.slotwise.db.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "checks": {"db": "error"}}


async def test_health_redis_ok_when_configured_and_up(database_url: str) -> None:
    app = create_app(make_settings(database_url, redis_url="redis://127.0.0.1:6379/15"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health/redis")
    await app.state.slotwise.db.dispose()
    await app.state.slotwise.redis.aclose()
    assert response.json()["checks"]["redis"] == "ok"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/users/me")
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    echoed = await client.get("/users/me", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/users/me", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await client.delete("/auth/me")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    for user_id in ("00000000-0000-0000-0000-000000000000", uuid.uuid4()):
        await client.get(f"/users/{user_id}")
    await client.get("/users/me")
    metrics = await client.get("http://test/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    by_id = 'method="GET",route="/api/v1/users/{user_id}",status="401"'
    assert f"slotwise_http_requests_total{{{by_id}}} 2.0" in text
    assert 'route="/api/v1/users/me",status="401"} 1.0' in text
    assert (
        'slotwise_http_request_duration_seconds_count{method="GET",route="/api/v1/users/{user_id}"}'
        " 2.0" in text
    )


async def test_metrics_time_each_request_from_its_start(client: httpx.AsyncClient) -> None:
    """The recorded duration is the request's own, not the time since the clock's epoch."""
    await client.get("/users/me")
    metrics = (await client.get("http://test/metrics")).text
    prefix = 'slotwise_http_request_duration_seconds_sum{method="GET",route="/api/v1/users/me"} '
    line = next(line for line in metrics.splitlines() if line.startswith(prefix))
    assert 0 < float(line.removeprefix(prefix)) < 5


def test_openapi_speaks_of_the_api_and_names_its_aliases(app: FastAPI) -> None:
    """Summaries and descriptions tell an API user what an operation does: an alias says
    which operation it is, and no text speaks of the projects Slotwise grew from."""
    document = app.openapi()
    texts = {
        f"{method.upper()} {path}": f"{operation.get('summary')} {operation.get('description')}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    texts |= {f"tag {tag['name']}": str(tag.get("description")) for tag in document["tags"]}
    texts |= {name: str(schema.get("description")) for name, schema in _schemas(document)}
    assert not {where: text for where, text in texts.items() if "seed" in text.lower()}
    aliases = next(tag for tag in document["tags"] if tag["name"] == "aliases")
    assert "aliases of `/providers/...`" in aliases["description"]


def _schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema in the document, and every property's, by name."""
    for name, schema in document["components"]["schemas"].items():
        yield name, schema
        for field, part in schema.get("properties", {}).items():
            yield f"{name}.{field}", part
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                yield f"{path}?{parameter['name']}", parameter


def test_cancel_is_one_operation_with_its_aliases(app: FastAPI) -> None:
    """POST /cancel is the cancel operation; DELETE is an alias left out of the document,
    PATCH /status (which also confirms and declines) points to it. All three still answer."""
    appointment = "/api/v1/appointments/{appointment_id}"
    public = app.openapi()["paths"]
    cancels = [
        f"{method.upper()} {path}"
        for path, operations in public.items()
        for method, operation in operations.items()
        if path.startswith(appointment)  # a series is cancelled by a route of its own
        and (operation.get("summary") or "").startswith("Cancel")
    ]
    assert cancels == [f"POST {appointment}/cancel"]
    assert "delete" not in public[appointment]
    described = public[f"{appointment}/cancel"]["post"]["description"]
    assert f"`DELETE {appointment.removeprefix('/api/v1')}`" in described
    assert f"`PATCH {appointment.removeprefix('/api/v1')}/status`" in described
    assert (
        f"POST {appointment.removeprefix('/api/v1')}/cancel"
        in (public[f"{appointment}/status"]["patch"]["description"])
    )
    hidden = every_route_documented(app)["paths"][appointment]["delete"]
    assert "alias of POST" in hidden["summary"]
    assert hidden_operations(app) >= {("DELETE", appointment)}


async def test_openapi_documents_every_route_with_its_errors(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        schema = (await client.get("/openapi.json")).json()
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/redoc")).status_code == 200
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/jwt/login",
        "/api/v1/auth/login/json",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/jwt/logout",
        "/api/v1/auth/me",
        "/api/v1/users/me",
        "/api/v1/users/",
        "/api/v1/users/{user_id}",
        "/health",
        "/health/db",
        "/health/redis",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                errors = {code for code in operation["responses"] if code.startswith(("4", "5"))}
                assert errors, f"{method.upper()} {path} documents no errors"
                for code in errors:
                    ref = operation["responses"][code]["content"]["application/json"]["schema"]
                    assert ref["$ref"].endswith("/ErrorBody"), (path, code)

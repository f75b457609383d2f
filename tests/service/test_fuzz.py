"""Schemathesis against Slotwise's own OpenAPI document, in process, as four kinds of caller,
on SQLite and on PostgreSQL.

Every operation, the default checks but two (below): no server error, statuses and bodies
as documented. Cases come from the schema (valid and invalid data alike) and lean on the
boundaries: dates in years 1 and 9999, datetimes there with offsets of ±23:59, and, in one
input per case, a control character appended to a string or an integer far beyond any
range. The number of examples is bounded so that CI stays fast (SLOTWISE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from starlette.testclient import TestClient

from slotwise.config import Settings
from slotwise.main import create_app
from slotwise.users.admin import create_admin
from tests.conftest import make_settings
from tests.factories import PASSWORD

pytestmark = pytest.mark.long

# Not run: positive_data_acceptance. Many inputs are valid JSON Schema yet refused by domain
# rules that a schema cannot state (a common password, a zone name not in the IANA database,
# an email at a reserved domain, a date window), and 422 is the right answer to them.
# Nor negative_data_rejection: pydantic's lax mode takes false for 0 and 1 for true in a
# JSON body, which the schema's types do not; the invalid cases are here to find 500s.
EXAMPLES = int(os.environ.get("SLOTWISE_FUZZ_EXAMPLES", "12"))
ROLES = ("anonymous", "client", "provider", "admin")
PROVIDER = "fuzz-prov"

EDGE_DATES = ["0001-01-01", "9999-12-31"]
EDGE_TIMES = ["00:00:00", "23:59:59"]
EDGE_OFFSETS = ["Z", "+23:59", "-23:59", ""]  # "": a naive time, read in the provider's zone
EDGE_DATETIMES = [f"{d}T{t}{o}" for d in EDGE_DATES for t in EDGE_TIMES for o in EDGE_OFFSETS]
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85"]
HUGE_INTEGERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 2**31]


def _mostly(edges: list[str], others: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Three values in four from the edges, the rest from anywhere."""
    return st.integers(0, 3).flatmap(lambda pick: others if pick == 0 else st.sampled_from(edges))


# Registered once, before any strategy is built (schemathesis caches the formats).
schemathesis.openapi.format("date", _mostly(EDGE_DATES, st.dates().map(str)))
schemathesis.openapi.format(
    "partial-time",
    _mostly([*EDGE_TIMES, "24:00", "23:59:59.999999"], st.times().map(lambda at: at.isoformat())),
)
schemathesis.openapi.format(
    "date-time", _mostly(EDGE_DATETIMES, st.datetimes().map(lambda at: at.isoformat() + "Z"))
)


def _token(client: TestClient, role: str, app_settings: Settings) -> str:
    email = f"fuzz-{role}-{uuid.uuid4().hex[:8]}@example.com"
    if role == "admin":
        asyncio.run(create_admin(app_settings, email=email, full_name="Fuzz", password=PASSWORD))
    else:
        response = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Fuzz", "role": role},
        )
        assert response.status_code == 201, response.text
    login = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    token: str = login.json()["access_token"]
    return token


@pytest.fixture(params=ROLES)
def caller(request: pytest.FixtureRequest, database_url: str) -> tuple[object, dict[str, str]]:
    # A live slot stream answered 200 ends at once: the client reads whole bodies.
    app_settings = make_settings(
        database_url, rate_limit_enabled=False, slot_stream_max_seconds=0.01
    )
    app = create_app(app_settings)
    headers: dict[str, str] = {}
    with TestClient(app) as client:
        if request.param != "anonymous":
            token = _token(client, request.param, app_settings)
            headers = {"Authorization": f"Bearer {token}"}
        owner = headers
        if request.param != "provider":
            owner = {"Authorization": f"Bearer {_token(client, 'provider', app_settings)}"}
        _open_all_week(client, owner)
    return app, headers


def _open_all_week(client: TestClient, owner: dict[str, str]) -> None:
    """The provider every caller's cases may aim at (PROVIDER): bookable at any hour."""
    profile = {"public_handle": PROVIDER, "requires_confirmation": False, "max_advance_days": 1095}
    created = client.post("/api/v1/providers/me", headers=owner, json=profile)
    assert created.status_code == 201, created.text
    for day in range(7):
        hours = {"day_of_week": day, "start_time": "00:00:00", "end_time": "00:00:00"}
        added = client.post("/api/v1/providers/me/availability", headers=owner, json=hours)
        assert added.status_code == 201, added.text


def _leaves(value: object, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield path, value


def _aimed(case: schemathesis.Case, data: st.DataObject) -> None:
    """Now and then, aim the case at the provider that exists rather than at a random one."""
    aim = st.integers(0, 3).map(bool)  # three cases in four
    path, body = case.path_parameters, case.body
    if isinstance(path, dict) and "ref" in path and data.draw(aim, label="aim the path"):
        path["ref"] = PROVIDER
    if isinstance(body, dict) and "provider_id" in body and data.draw(aim, label="aim the body"):
        body["provider_id"] = PROVIDER


def _at_the_edge(case: schemathesis.Case, data: st.DataObject) -> None:
    """Push one string or integer of the case (path, query or body) over an edge, or none."""
    inputs = {"path_parameters": case.path_parameters, "query": case.query, "body": case.body}
    leaves = [
        (part, path, value)
        for part, container in inputs.items()
        if isinstance(container, dict)
        for path, value in _leaves(container)
    ]
    if not leaves or not data.draw(st.booleans(), label="push one input over an edge"):
        return
    part, path, value = data.draw(st.sampled_from(leaves), label="the input")
    if isinstance(value, int):
        edge: object = data.draw(st.sampled_from(HUGE_INTEGERS), label="huge integer")
    else:
        edge = value + data.draw(st.sampled_from(CONTROLS), label="control character")
    container = inputs[part]
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = edge


def _fuzz(operation: Any, headers: dict[str, str], counter: list[int]) -> None:
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases, data=st.data())
    # No shrinking and no explaining: through a whole app they take many minutes (explain
    # traces every line run), and the failing case as found is reported with its curl.
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        counter[0] += 1
        _aimed(case, data)
        _at_the_edge(case, data)
        case.call_and_validate(
            headers=headers, excluded_checks=[positive_data_acceptance, negative_data_rejection]
        )

    run()


def _as_a_server_answers(app: Any) -> Any:
    """The app, minus the re-raise after its 500 went out (Starlette's ServerErrorMiddleware
    re-raises for the server to log): schemathesis then reports the 500 with the request."""

    async def application(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise

    return application


def _described(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup) and "Reproduce with" not in text:
        text = "\n".join(_described(part) for part in exc.exceptions)  # several, undescribed
    edge = " [at the calendar's edge]" if ("0001-" in text or "9999-" in text) else ""
    return edge + "\n" + text[:3000]


def test_api_conforms_to_its_schema(caller: tuple[object, dict[str, str]]) -> None:
    app, headers = caller
    served = _as_a_server_answers(app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", served).exclude(tag="aliases")
    if headers:  # logging out would end the caller's own session midway through the run
        schema = schema.exclude(path_regex=r".*/logout$")
    failures: dict[str, str] = {}
    counter = [0]
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, headers, counter)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures
            failures[operation.label] = _described(exc)
    print(f"fuzzed {operations} operations with {counter[0]} cases: {len(failures)} failing")
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())

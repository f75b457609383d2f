"""Text no database can store, or that has no place in a name, is refused with a 422.

The rule lives in one place (slotwise.text); the last test walks every route, documented or
not, so that a string field or parameter added later cannot miss it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from slotwise.main import create_app
from slotwise.text import MULTILINE_PATTERN, TEXT_PATTERN
from tests.conftest import make_settings
from tests.every_route import every_route_documented, hidden_operations
from tests.factories import bookable_provider, guest_booking, signed_in, unique_email

NUL = "\u0000"


def _refused(response: httpx.Response, *loc: str, kind: str = "control_character") -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(loc) in [error["loc"] for error in body["details"]], body["details"]
    refusal = next(error for error in body["details"] if error["loc"] == list(loc))
    assert refusal["type"] == kind, refusal


async def test_nul_is_refused_in_every_kind_of_input(client: httpx.AsyncClient) -> None:
    provider, profile = await bookable_provider(client)
    _refused(
        await client.post(
            "/auth/register",
            json={"email": unique_email(), "password": "x" * 20, "full_name": f"Ana{NUL}"},
        ),
        "body",
        "full_name",
    )
    _refused(
        await client.patch("/users/me", headers=provider.headers, json={"full_name": f"A{NUL}"}),
        "body",
        "full_name",
    )
    guest = guest_booking(profile["id"], "2099-03-02T10:00:00")
    guest["guest_details"] = {"name": f"Guest{NUL}", "email": unique_email()}
    _refused(await client.post("/appointments/", json=guest), "body", "guest_details", "name")
    _refused(
        await client.post(
            "/appointments/",
            json=guest_booking(profile["id"], "2099-03-02T10:00:00", notes=f"hi{NUL}"),
        ),
        "body",
        "notes",
    )
    _refused(
        await client.post(
            "/providers/me/services",
            headers=provider.headers,
            json={"name": f"Math{NUL}", "duration_minutes": 30},
        ),
        "body",
        "name",
    )
    _refused(await client.get("/providers", params={"q": f"a{NUL}"}), "query", "q")
    _refused(await client.get("/providers", params={"specialty": NUL}), "query", "specialty")
    _refused(await client.get("/providers/ana%00math"), "path", "ref")
    _refused(await client.get("/providers/ana%00math/slots"), "path", "ref")
    _refused(
        await client.post("/auth/login", data={"username": f"a{NUL}@example.com", "password": "x"}),
        "body",
        "username",
    )


async def test_other_controls_and_lone_surrogates_are_refused(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    for name in ("Ana\nLópez", "Ana\tLópez", "Ana\x1bLópez", "Ana\x7f", "Ana\x85"):
        response = await client.patch(
            "/users/me", headers=account.headers, json={"full_name": name}
        )
        _refused(response, "body", "full_name")
    # JSON can carry a lone surrogate as an escape; no UTF-8 store can hold it.
    raw = b'{"full_name": "Ana \\ud800"}'
    headers = {**account.headers, "Content-Type": "application/json"}
    _refused(await client.patch("/users/me", headers=headers, content=raw), "body", "full_name")
    kept = await client.patch(
        "/users/me", headers=account.headers, json={"full_name": "José Ñandú 🙂 \u200d"}
    )
    assert kept.status_code == 200, kept.text


async def test_a_json_body_that_is_not_utf8_is_422(client: httpx.AsyncClient) -> None:
    account = await signed_in(client)
    headers = {**account.headers, "Content-Type": "application/json"}
    for body in (b'{"full_name": "Ana \xff"}', b"\xf3\x80\xb3"):
        response = await client.patch("/users/me", headers=headers, content=body)
        _refused(response, "body", kind="json_invalid")


async def test_multiline_text_keeps_tabs_and_line_breaks(client: httpx.AsyncClient) -> None:
    provider, _ = await bookable_provider(client)
    bio = "Line one\r\n\tLine two\nLine three"
    response = await client.patch("/providers/me", headers=provider.headers, json={"bio": bio})
    assert response.status_code == 200, response.text
    assert response.json()["bio"] == bio
    for control in ("\x00", "\x0b", "\x1b", "\x9b"):
        _refused(
            await client.patch(
                "/providers/me", headers=provider.headers, json={"bio": f"a{control}b"}
            ),
            "body",
            "bio",
        )


# Strings that pydantic parses into something other than text, or that email-validator
# checks character by character (it refuses every control character and surrogate).
PARSED_FORMATS = {"uuid", "date", "date-time", "partial-time", "email"}


def _request_strings(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    components = document.get("components", {}).get("schemas", {})

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> Iterator[Any]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(components[name], f"{where}<{name}>", seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for part in schema.get(key, []):
                yield from walk(part, where, seen)
        if schema.get("type") == "string":
            yield where, schema
        for name, part in schema.get("properties", {}).items():
            yield from walk(part, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from walk(schema[key], f"{where}[]", seen)

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                where = f"{label} {parameter['in']}:{parameter['name']}"
                yield from walk(parameter["schema"], where, frozenset())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield from walk(media["schema"], f"{label} body", frozenset())


def test_every_string_a_request_carries_uses_the_shared_text_types() -> None:
    app = create_app(make_settings("sqlite+aiosqlite://"))
    assert hidden_operations(app) >= {("DELETE", "/api/v1/appointments/{appointment_id}")}
    document = every_route_documented(app)
    strings = list(_request_strings(document))
    assert len(strings) > 100  # the walk reaches bodies, queries, paths, forms and headers
    missing = [
        where
        for where, schema in strings
        if schema.get("pattern") not in (TEXT_PATTERN, MULTILINE_PATTERN)
        and schema.get("format") not in PARSED_FORMATS
        and "enum" not in schema
        and "const" not in schema
    ]
    assert not missing, "strings without slotwise.text's Text or MultilineText:\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1f", "\x7f", "\x9f", "\ud800"])
def test_the_documented_patterns_refuse_what_the_types_refuse(control: str) -> None:
    import re

    for pattern in (TEXT_PATTERN, MULTILINE_PATTERN):
        assert re.search(pattern, f"a{control}b") is None
    assert re.search(TEXT_PATTERN, "a\tb") is None
    assert re.search(MULTILINE_PATTERN, "a\tb\r\nc") is not None
    assert json.dumps(TEXT_PATTERN).isascii()  # escapes, not raw characters, in the document

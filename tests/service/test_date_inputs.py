"""Every date and datetime any route takes is one of slotwise.dates' types (years 2-9998)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from slotwise.dates import RANGE_KEY
from tests.every_route import every_route_documented


def _dates_in(schema: Any, components: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
    """The date and date-time schemas inside `schema`, following $refs once each."""
    if isinstance(schema, list):
        return [found for item in schema for found in _dates_in(item, components, seen)]
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _dates_in(components[name], components, seen)
    found = [schema] if schema.get("format") in ("date", "date-time") else []
    for value in schema.values():
        found += _dates_in(value, components, seen)
    return found


def test_every_date_a_route_takes_is_bounded(app: FastAPI) -> None:
    document = every_route_documented(app)  # the aliases left out of the public one too
    components = document["components"]["schemas"]
    unbounded: list[str] = []
    inputs = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            taken = [parameter["schema"] for parameter in operation.get("parameters", [])]
            taken += [
                content["schema"]
                for content in operation.get("requestBody", {}).get("content", {}).values()
            ]
            for schema in _dates_in(taken, components, set()):
                inputs += 1
                if RANGE_KEY not in schema:
                    unbounded.append(f"{method.upper()} {path}")
    assert not unbounded
    assert inputs >= 20  # the slot listings, hours, overrides, time off, bookings, lists

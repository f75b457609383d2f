"""The error body as ``errors.error_response`` writes it: for the values error details
hold (text, integers, ids, instants, lists of them), the bytes a ``JSONResponse`` of the
body's JSON-mode dump would carry (pydantic serialises it in one pass)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import Request

from slotwise.errors import ErrorBody, error_response

DETAILS: list[Any] = [
    None,
    {"limit": "per_day", "maximum": 3},
    {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "at": datetime(2027, 3, 1, tzinfo=UTC),
    },
    [
        {
            "loc": ["body", "start_datetime"],
            "msg": "Zeit ungültig: «später» 日本",
            "type": "value_error",
        }
    ],
]


def a_request(request_id: str | None) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": []}
    if request_id is not None:
        scope["state"] = {"request_id": request_id}
    return Request(scope)


@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize("request_id", ["0f" * 16, None])
def test_an_error_body_is_the_json_of_its_model(details: Any, request_id: str | None) -> None:
    response = error_response(a_request(request_id), 409, "slot_unavailable", "Taken.", details)
    body = ErrorBody(
        code="slot_unavailable", message="Taken.", details=details, request_id=request_id
    )
    as_before = json.dumps(
        body.model_dump(mode="json"), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()
    assert response.body == as_before
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(as_before))

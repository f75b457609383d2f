"""The OpenAPI document describes every webhook event, with an example body."""

from __future__ import annotations

from fastapi import FastAPI

from slotwise.webhooks.events import EventType


async def test_every_event_is_in_the_documents_webhooks(app: FastAPI) -> None:
    document = app.openapi()
    assert set(document["webhooks"]) == {kind.value for kind in EventType}
    schemas = document["components"]["schemas"]
    for kind in EventType:
        body = document["webhooks"][kind.value]["post"]["requestBody"]
        name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert schemas[name]["examples"], kind
        assert "webhook-signature" in document["webhooks"][kind.value]["post"]["description"]

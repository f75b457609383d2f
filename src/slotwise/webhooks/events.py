"""The events a subscription may ask for (the OpenAPI document describes each)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    BOOKING_CREATED = "booking.created"
    BOOKING_CONFIRMED = "booking.confirmed"
    BOOKING_DECLINED = "booking.declined"
    BOOKING_CANCELLED = "booking.cancelled"
    BOOKING_RESCHEDULED = "booking.rescheduled"
    BOOKING_COMPLETED = "booking.completed"
    BOOKING_NO_SHOW = "booking.no_show"
    AVAILABILITY_CHANGED = "availability.changed"


# The version of the payloads' shape: a receiver branches on it.
PAYLOAD_VERSION = 1

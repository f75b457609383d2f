"""Turn the database's refusals (exclusion constraints) into the API's conflicts."""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy.exc import IntegrityError

from slotwise.booking.errors import ClientConflict, SlotUnavailable

PROVIDER_CONSTRAINT = "ex_appointments_provider_no_overlap"
CLIENT_CONSTRAINT = "ex_appointments_client_no_overlap"


def raise_for_constraint(exc: IntegrityError) -> NoReturn:
    text = str(exc.orig)
    if CLIENT_CONSTRAINT in text:
        raise ClientConflict() from exc
    if PROVIDER_CONSTRAINT in text:
        raise SlotUnavailable() from exc
    raise exc

"""Every reason the decision or the write can give is an API error with the same code:
refusals are values in the core (``scheduling.Reason``) and one function turns them into
answers (``booking.errors.refused``; mypy checks that its match covers every reason)."""

from __future__ import annotations

import pytest

from slotwise.booking.errors import refused
from slotwise.errors import AppError, status_for
from slotwise.scheduling import Reason, Refusal


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_is_answered_with_its_own_code(reason: Reason) -> None:
    error = refused(Refusal(reason, {"limit": "per_day"}))
    assert isinstance(error, AppError)
    assert error.code == reason.value
    assert status_for(error) in (404, 409, 422)


def test_details_are_passed_on_and_absent_ones_are_null() -> None:
    assert refused(Refusal(Reason.TOO_SOON, {"min_notice_minutes": 60})).details == {
        "min_notice_minutes": 60
    }
    assert refused(Refusal(Reason.SLOT_UNAVAILABLE)).details is None

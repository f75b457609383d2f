"""Why a booking or a change to one is refused: one stable code each."""

from __future__ import annotations

from typing import assert_never

from slotwise.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from slotwise.providers.service import ProviderNotFound, ServiceNotFound
from slotwise.scheduling import Reason, Refusal


class AppointmentNotFound(NotFound):
    code = "appointment_not_found"
    message = "No such appointment."


class SlotUnavailable(Conflict):
    code = "slot_unavailable"
    message = "This time is already taken."


class SessionNotFound(NotFound):
    code = "session_not_found"
    message = "No such group session."


class CalendarBusy(Conflict):
    code = "calendar_busy"
    message = "The provider is busy then: their own calendar has an event at this time."


class SessionFull(Conflict):
    code = "session_full"
    message = "Every seat of this session is taken."


class ClientConflict(Conflict):
    code = "client_conflict"
    message = "You already have an appointment at this time."


class ClientBlocked(Conflict):
    code = "client_blocked"
    message = "Booking is blocked for this client after repeated no-shows."


class ProviderNotAccepting(Conflict):
    code = "provider_not_accepting"
    message = "This provider is not accepting bookings."


class OutsideAvailability(InvalidInput):
    code = "outside_availability"
    message = "This time is not one of the provider's slots."


class TooSoon(InvalidInput):
    code = "too_soon"
    message = "This time is in the past or inside the provider's minimum notice."


class TooFar(InvalidInput):
    code = "too_far"
    message = "This time is beyond how far ahead the provider takes bookings."


class DurationMismatch(InvalidInput):
    code = "duration_mismatch"
    message = "The end does not match the session length (the service's, or the profile's)."


class GuestDetailsRequired(InvalidInput):
    code = "guest_details_required"
    message = "Sign in, or give guest_details {name, email} to book as a guest."


class GuestDetailsNotAllowed(InvalidInput):
    code = "guest_details_not_allowed"
    message = "You are signed in: book as yourself, without guest_details."


class CannotBookYourself(InvalidInput):
    code = "cannot_book_yourself"
    message = "Providers cannot book their own time."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message = "The appointment cannot go to that status from its current one."


class PolicyWindowClosed(Conflict):
    code = "policy_window_closed"
    message = "It is too close to the start to cancel or reschedule."


class NotStarted(Conflict):
    code = "appointment_not_started"
    message = "The appointment has not started yet."


class NotAllowed(Forbidden):
    code = "forbidden"
    message = "You are not allowed to do this to this appointment."


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    message = "A request with this Idempotency-Key is in progress; retry shortly."


class GuestLimitReached(Conflict):
    code = "guest_limit_reached"
    message = (
        "This email already holds as many upcoming bookings with this provider as a guest may."
    )


class VerificationExpired(Conflict):
    code = "verification_expired"
    message = "The link expired and the time was released; book again."


class LimitReached(Conflict):
    code = "limit_reached"
    message = (
        "The provider's limit is reached: bookings a day, a week, or per client "
        "(details.limit: per_day, per_week, per_client; details.maximum)."
    )


class HoldLimitReached(Conflict):
    code = "hold_limit_reached"
    message = "You already hold as many slots with this provider as you may; book or release one."


class HoldNotFound(NotFound):
    code = "hold_not_found"
    message = "No such hold."


class HoldExpired(Conflict):
    code = "hold_expired"
    message = "The hold ended and its time was released; hold or book again."


class HoldMismatch(InvalidInput):
    code = "hold_mismatch"
    message = "The booking differs from the hold it gives (details name what differs)."


class TermsChanged(Conflict):
    code = "provider_changed"
    message = "The provider's hours or terms changed while booking; try again."


class SeriesUnavailable(Conflict):
    code = "series_unavailable"
    message = (
        "Some occurrences of the series cannot be booked (details.occurrences: each one's "
        "index, start_at, code and details); nothing was booked."
    )


class SeriesTooLong(InvalidInput):
    code = "series_too_long"
    message = "A series has at most 52 occurrences."


class SeriesNotFound(NotFound):
    code = "series_not_found"
    message = "No such series."


class SlotAvailable(Conflict):
    code = "slot_available"
    message = "This time is free: book it instead of waiting for it."


class AlreadyWaiting(Conflict):
    code = "already_waiting"
    message = "You are already on this time's waitlist."


class WaitlistLimitReached(Conflict):
    code = "waitlist_limit_reached"
    message = (
        "You are already on as many of this provider's waitlists as you may be "
        "(details.max_entries); leave one first."
    )


class WaitlistEntryNotFound(NotFound):
    code = "waitlist_entry_not_found"
    message = "No such waitlist entry."


def refused(refusal: Refusal) -> AppError:
    """The API's error for a refusal of the booking decision or of the write (every reason
    has one: mypy checks that the match is exhaustive)."""
    details = dict(refusal.details) or None
    match refusal.reason:
        case Reason.PROVIDER_NOT_FOUND:
            return ProviderNotFound()
        case Reason.SERVICE_NOT_FOUND:
            return ServiceNotFound()
        case Reason.CANNOT_BOOK_YOURSELF:
            return CannotBookYourself()
        case Reason.PROVIDER_NOT_ACCEPTING:
            return ProviderNotAccepting()
        case Reason.DURATION_MISMATCH:
            return DurationMismatch(details=details)
        case Reason.TOO_SOON:
            return TooSoon(details=details)
        case Reason.TOO_FAR:
            return TooFar(details=details)
        case Reason.OUTSIDE_AVAILABILITY:
            return OutsideAvailability()
        case Reason.CALENDAR_BUSY:
            return CalendarBusy()
        case Reason.SLOT_UNAVAILABLE:
            return SlotUnavailable()
        case Reason.CLIENT_CONFLICT:
            return ClientConflict()
        case Reason.CLIENT_BLOCKED:
            return ClientBlocked()
        case Reason.LIMIT_REACHED:
            return LimitReached(details=details)
        case Reason.GUEST_LIMIT_REACHED:
            return GuestLimitReached(details=details)
        case Reason.SESSION_FULL:
            return SessionFull(details=details)
        case Reason.HOLD_LIMIT_REACHED:
            return HoldLimitReached(details=details)
        case Reason.TERMS_CHANGED:
            return TermsChanged()
        case _:
            assert_never(refusal.reason)

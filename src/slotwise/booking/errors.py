"""Why a booking or a change to one is refused: one stable code each."""

from __future__ import annotations

from slotwise.errors import Conflict, Forbidden, InvalidInput, NotFound


class AppointmentNotFound(NotFound):
    code = "appointment_not_found"
    message = "No such appointment."


class SlotUnavailable(Conflict):
    code = "slot_unavailable"
    message = "This time is already taken."


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

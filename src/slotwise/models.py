"""Every ORM model, imported in one place so that ``Base.metadata`` is complete."""

from slotwise.apikeys.models import ApiKey
from slotwise.auth.models import PasswordResetToken, RefreshToken, RevokedAccessToken
from slotwise.availability.models import (
    CalendarBusy,
    DateOverride,
    ScheduleChange,
    TimeOff,
    WeeklyPattern,
)
from slotwise.booking.models import (
    Appointment,
    AppointmentEvent,
    AppointmentSeries,
    ClientStanding,
    IdempotencyKey,
    WaitlistEntry,
)
from slotwise.calendars.models import CalendarFeed
from slotwise.db import Base
from slotwise.external.models import ExternalCalendar, PushedEvent
from slotwise.notifications.models import OutboxMessage
from slotwise.providers.models import Provider, Service
from slotwise.teams.models import Team, TeamMember, TeamService
from slotwise.users.models import RoleChange, User
from slotwise.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    WebhookSubscriptionEvent,
)

__all__ = [
    "ApiKey",
    "Appointment",
    "AppointmentEvent",
    "AppointmentSeries",
    "Base",
    "CalendarBusy",
    "CalendarFeed",
    "ClientStanding",
    "DateOverride",
    "ExternalCalendar",
    "IdempotencyKey",
    "OutboxMessage",
    "PasswordResetToken",
    "Provider",
    "PushedEvent",
    "RefreshToken",
    "RevokedAccessToken",
    "RoleChange",
    "ScheduleChange",
    "Service",
    "Team",
    "TeamMember",
    "TeamService",
    "TimeOff",
    "User",
    "WaitlistEntry",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "WebhookSubscriptionEvent",
    "WeeklyPattern",
]

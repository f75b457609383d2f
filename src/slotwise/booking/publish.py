"""Booking's side of what it tells the rest: ``facts.BookingFacts`` built from appointments,
and the queries calendars and the outbox worker ask of booking (wired by the app factory
and the worker command, so that neither imports booking's models)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.booking import access
from slotwise.booking.events import ActorRole
from slotwise.booking.facts import (
    BookingFacts,
    Parties,
    Party,
    SeriesFacts,
    SessionFacts,
    Status,
    title,
)
from slotwise.booking.models import Appointment, AppointmentSeries
from slotwise.config import Settings
from slotwise.providers.models import Provider, Service
from slotwise.users.models import Role, User


@dataclass(frozen=True, slots=True)
class Mailing:
    """What the application's settings say of the mail a booking sends: reminders this many
    minutes before a confirmed appointment, and a guest's link to manage it (the setting
    ``guest_manage_url``, with ``{token}``; empty: none is mailed), or to manage a series
    (``guest_series_manage_url``; unset, the booking's link with ``series/`` before the
    token, as the API's own paths are: ``Settings.series_manage_url``)."""

    reminder_offsets_minutes: tuple[int, ...] = (1440, 60)
    guest_manage_url: str = ""
    guest_series_manage_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailing:
        return cls(
            reminder_offsets_minutes=tuple(settings.reminder_offsets_minutes),
            guest_manage_url=settings.guest_manage_url,
            guest_series_manage_url=settings.series_manage_url,
        )


def client_party(appointment: Appointment, client_user: User | None) -> Party:
    """The client: their account, or the guest's details (by the booking's zone)."""
    if client_user is not None:
        return Party(
            email=client_user.email,
            name=client_user.full_name,
            timezone=client_user.timezone or appointment.timezone,
        )
    return Party(
        email=appointment.guest_email or appointment.client_key,
        name=appointment.guest_name or appointment.client_key,
        timezone=appointment.timezone,
    )


def parties(
    appointment: Appointment,
    provider: Provider,
    client_user: User | None,
    service_name: str | None,
) -> Parties:
    """The appointment's provider (with its account), its client (their account, or None for
    a guest) and its title (with its service's name, if it has a service)."""
    return Parties(
        provider=Party(
            email=provider.user.email, name=provider.full_name, timezone=provider.timezone
        ),
        client=client_party(appointment, client_user),
        title=title(provider.full_name, service_name),
    )


async def parties_of(session: AsyncSession, appointment: Appointment) -> Parties:
    """``parties``, read (the session's identity map caches what it reads)."""
    provider = await session.get(Provider, appointment.provider_id)
    assert provider is not None  # appointments cascade with their provider
    client_user = await session.get(User, appointment.client_id) if appointment.client_id else None
    service = await session.get(Service, appointment.service_id) if appointment.service_id else None
    return parties(appointment, provider, client_user, service.name if service else None)


def series_facts(series: AppointmentSeries) -> SeriesFacts:
    return SeriesFacts(
        series_id=series.id,
        timezone=series.timezone,
        first_time=datetime.combine(series.first_date, series.wall_time),
        duration=timedelta(minutes=series.duration_minutes),
        every_weeks=series.every_weeks,
        count=series.count,
        sequence=series.sequence,
    )


def facts(
    appointment: Appointment,
    parties: Parties,
    *,
    manage_url: str | None = None,
    series: SeriesFacts | None = None,
) -> BookingFacts:
    return BookingFacts(
        appointment_id=appointment.id,
        provider_id=appointment.provider_id,
        start_at=appointment.start_at,
        end_at=appointment.end_at,
        timezone=appointment.timezone,
        status=appointment.status,
        sequence=appointment.sequence,
        parties=parties,
        notes=appointment.notes,
        cancel_reason=appointment.cancel_reason,
        hold_until=appointment.hold_until,
        manage_url=manage_url,
        series=series,
        recurrence_at=appointment.recurrence_at if series is not None else None,
    )


async def facts_of(
    session: AsyncSession, appointment: Appointment, series: SeriesFacts | None = None
) -> BookingFacts:
    return facts(appointment, await parties_of(session, appointment), series=series)


def acted_facts(acting: access.Access) -> BookingFacts:
    """The facts of the appointment someone acts on, from what was loaded with it."""
    appointment = acting.appointment
    return facts(
        appointment,
        parties(appointment, acting.provider, acting.client, acting.service_name),
        series=series_facts(acting.series) if acting.series is not None else None,
    )


# A seat's statuses that leave its session without it (its attendee is not shown).
_LEFT = frozenset({Status.CANCELLED, Status.DECLINED})
# A session with a seat in one of these is confirmed (else, while one is pending, tentative).
_HAPPENING = frozenset({Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW})

CalendarFacts = BookingFacts | SessionFacts


def _is_seat(appointment: Appointment) -> bool:
    """A seat of a group session that its provider's calendar shows as the session's event
    (a series' seats stay in their series' event)."""
    return appointment.capacity > 1 and appointment.series_id is None


async def session_facts(session: AsyncSession, seats: list[Appointment]) -> SessionFacts:
    """The provider's view of one group session, from all its seats (any status); its
    attendees by seat number, as the provider's sessions route lists them."""
    seats = sorted(seats, key=lambda seat: (seat.seat_no, seat.created_at, seat.id))
    first = seats[0]
    booked = [seat for seat in seats if seat.status not in _LEFT]
    if not booked:
        status = Status.CANCELLED
    elif any(seat.status in _HAPPENING for seat in booked):
        status = Status.CONFIRMED
    else:
        status = Status.PENDING
    named = await parties_of(session, first)
    attendees = []
    notes = []
    for seat in booked:
        who = await parties_of(session, seat)
        attendees.append(who.client)
        if seat.notes:
            notes.append(f"{who.client.name}: {seat.notes}")
    return SessionFacts(
        session_key=first.session_key,
        provider_id=first.provider_id,
        start_at=first.start_at,
        end_at=first.end_at,
        timezone=first.timezone,
        status=status,
        # Every seat taken adds one, every change to a seat adds its own.
        sequence=sum(seat.sequence + 1 for seat in seats),
        title=named.title,
        provider=named.provider,
        capacity=max(seat.capacity for seat in seats),
        attendees=tuple(attendees),
        notes="\n".join(notes) or None,
    )


def _seats_of(appointment: Appointment) -> Select[Appointment]:
    return select(Appointment).where(
        Appointment.session_key == appointment.session_key,
        Appointment.provider_id == appointment.provider_id,
        Appointment.status != Status.HELD,
    )


class CalendarAppointments:
    """The appointments a user's calendar shows (``calendars.service.Appointments``): a
    provider's group session is one event with its attendees (``SessionFacts``); a client's
    seat is their own appointment."""

    async def one(
        self, session: AsyncSession, *, user: User, appointment_id: uuid.UUID
    ) -> list[CalendarFacts]:
        """One the user takes part in, or AppointmentNotFound (404) as for any other; an
        occurrence of a series comes with the whole series (its calendar event); a seat, to
        its provider, as its session."""
        acting = await access.for_user(session, user=user, appointment_id=appointment_id)
        appointment = acting.appointment
        if acting.role is ActorRole.PROVIDER and _is_seat(appointment):
            seats = await session.scalars(_seats_of(appointment))
            return [await session_facts(session, list(seats))]
        if acting.series is None:
            return [acted_facts(acting)]
        rule = series_facts(acting.series)
        rows = await session.scalars(
            select(Appointment)
            .where(Appointment.series_id == acting.series.id)
            .order_by(Appointment.recurrence_at)
        )
        return [await facts_of(session, appointment, rule) for appointment in rows]

    async def of_user(
        self, session: AsyncSession, *, user: User, starting_from: datetime | None = None
    ) -> list[CalendarFacts]:
        """The user's appointments as client and as provider, by start; the seats of each of
        the provider's group sessions as one. As provider only while the account is one (as
        `access` decides who may act as a provider): a profile outlives its owner's demotion,
        and its clients' names and emails must not."""
        provider_ids: set[uuid.UUID] = set()
        if user.role is Role.PROVIDER:
            provider_ids = set(
                await session.scalars(select(Provider.id).where(Provider.user_id == user.id))
            )
        query = select(Appointment).where(
            or_(Appointment.client_id == user.id, Appointment.provider_id.in_(provider_ids)),
            Appointment.status != Status.HELD,  # a hold is not an appointment yet
        )
        if starting_from is not None:
            query = query.where(Appointment.start_at >= starting_from)
        rows = list(await session.scalars(query.order_by(Appointment.start_at, Appointment.id)))
        # A series is one calendar event: all its occurrences, even those outside the window
        # (else the rule's occurrences missing here would read as exceptions).
        series_ids = {a.series_id for a in rows if a.series_id is not None}
        rules: dict[uuid.UUID, SeriesFacts] = {}
        if series_ids:
            found = await session.scalars(
                select(AppointmentSeries).where(AppointmentSeries.id.in_(series_ids))
            )
            rules = {series.id: series_facts(series) for series in found}
            seen = {a.id for a in rows}
            more = await session.scalars(
                select(Appointment).where(Appointment.series_id.in_(series_ids))
            )
            rows += [a for a in more if a.id not in seen]
        # A session's seats share its start: the window takes all of them or none.
        sessions: dict[uuid.UUID, list[Appointment]] = {}
        for a in rows:
            if a.provider_id in provider_ids and a.client_id != user.id and _is_seat(a):
                sessions.setdefault(a.session_key, []).append(a)
        shown: list[CalendarFacts] = []
        for a in rows:
            seats = sessions.get(a.session_key) if a.provider_id in provider_ids else None
            if seats is None or a.client_id == user.id:
                shown.append(
                    await facts_of(session, a, rules.get(a.series_id) if a.series_id else None)
                )
            elif seats[0] is a:
                shown.append(await session_facts(session, seats))
        return shown


async def reminder_still_due(
    session: AsyncSession, appointment_id: uuid.UUID, start_at: datetime
) -> bool:
    """A reminder goes only for an appointment still confirmed at the time it named
    (``notifications.worker.ReminderCheck``)."""
    appointment = await session.get(Appointment, appointment_id)
    return (
        appointment is not None
        and appointment.status is Status.CONFIRMED
        and appointment.start_at == start_at
    )

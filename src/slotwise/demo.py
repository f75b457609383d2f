"""``slotwise demo``: a small world to try every route with, and how to sign in to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from slotwise.auth.passwords import PasswordHasher
from slotwise.availability.schemas import PatternCreate
from slotwise.availability.service import add_pattern
from slotwise.booking.create import book
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.schemas import AppointmentCreate, GuestDetails
from slotwise.booking.terms import TermsCache
from slotwise.config import Settings
from slotwise.db import Database
from slotwise.providers import repository as providers_repo
from slotwise.providers import service as providers_service
from slotwise.providers.schemas import ProviderCreate, ServiceCreate
from slotwise.scheduling import resolve_wall_time
from slotwise.users import repository as users_repo
from slotwise.users.models import Role, User

PASSWORD = "slotwise-demo-passphrase"  # noqa: S105 - the demo's published password


@dataclass(frozen=True)
class DemoProvider:
    email: str
    name: str
    handle: str
    specialty: str
    timezone: str


PROVIDERS = (
    DemoProvider("ana@demo.slotwise.dev", "Ana Torres", "ana-math", "Math", "America/Guayaquil"),
    DemoProvider("lee@demo.slotwise.dev", "Dr. Lee Park", "dr-park", "Therapy", "America/New_York"),
    DemoProvider("sam@demo.slotwise.dev", "Sam Okafor", "sam-piano", "Piano", "Europe/London"),
)
CLIENTS = (("maria@demo.slotwise.dev", "Maria Client"), ("john@demo.slotwise.dev", "John Client"))
ADMIN = ("admin@demo.slotwise.dev", "Demo Admin")


async def _user(
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    name: str,
    role: Role,
    now: datetime,
) -> tuple[User, bool]:
    existing = await users_repo.get_by_email(session, email)
    if existing is not None:
        return existing, False
    user = User(
        email=email,
        full_name=name,
        role=role,
        hashed_password=await hasher.hash(PASSWORD),
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    return user, True


async def _free_handle(session: AsyncSession, wanted: str) -> str:
    """``wanted``, or, where someone else has it already, ``wanted-demo`` (``-demo-2``, …)."""
    candidates = (wanted, f"{wanted}-demo", *(f"{wanted}-demo-{n}" for n in range(2, 100)))
    for handle in candidates:
        if not await providers_repo.handle_taken(session, handle):
            return handle
    raise RuntimeError(f"no free public handle like {wanted!r}")  # pragma: no cover


async def _shown_handle(session: AsyncSession, user: User) -> str:
    provider = await providers_repo.get_for_user(session, user.id)
    return f"/providers/{provider.public_handle}" if provider else "no profile"


def _next_weekday(now: datetime, zone: ZoneInfo, days_ahead: int, hour: int) -> datetime:
    day = (now.astimezone(zone) + timedelta(days=days_ahead)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return resolve_wall_time(day, time(hour), zone)


async def populate(settings: Settings, *, now: datetime) -> list[str]:
    """Create the demo world once (later runs only print); return lines to show.

    Accounts that exist already are left as they are; a handle that another account has
    taken gets a ``-demo`` suffix, and the lines name the handles in use."""
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
    )
    database = Database(settings.database_url, pool_size=1)
    guests = GuestPolicy.from_settings(settings)
    lines = []
    handles: dict[str, str] = {}
    try:
        terms = TermsCache()  # kept for this run only
        async with database.session(writes=True) as session, session.begin():
            await _user(session, hasher, *ADMIN, Role.ADMIN, now)
            clients = [
                (await _user(session, hasher, email, name, Role.CLIENT, now))[0]
                for email, name in CLIENTS
            ]
            for index, spec in enumerate(PROVIDERS):
                user, created = await _user(
                    session, hasher, spec.email, spec.name, Role.PROVIDER, now
                )
                if not created:
                    handles[spec.email] = await _shown_handle(session, user)
                    continue
                handle = await _free_handle(session, spec.handle)
                handles[spec.email] = f"/providers/{handle}"
                provider = await providers_service.create_profile(
                    session,
                    user=user,
                    now=now,
                    default_timezone=settings.default_timezone,
                    data=ProviderCreate(
                        public_handle=handle,
                        specialty=spec.specialty,
                        bio=f"{spec.name} teaches {spec.specialty.lower()}.",
                        timezone=spec.timezone,
                        requires_confirmation=index != 2,
                        max_advance_days=120,
                    ),
                )
                await providers_service.create_service(
                    session,
                    provider=provider,
                    now=now,
                    data=ServiceCreate(name="Intro call", duration_minutes=30),
                )
                for day in range(5):
                    for start, end in ((time(9), time(12)), (time(13), time(17))):
                        await add_pattern(
                            session,
                            provider=provider,
                            now=now,
                            data=PatternCreate(day_of_week=day, start_time=start, end_time=end),
                        )
                zone = ZoneInfo(spec.timezone)
                await book(
                    session,
                    kept_terms=terms,
                    user=clients[index % 2],
                    now=now,
                    guests=guests,
                    data=AppointmentCreate(
                        provider_id=str(provider.id),
                        start_datetime=_next_weekday(now, zone, 2, hour=10),
                        notes="Booked by the demo",
                    ),
                )
                await book(
                    session,
                    kept_terms=terms,
                    user=None,
                    now=now,
                    guests=guests,
                    data=AppointmentCreate(
                        provider_id=str(provider.id),
                        start_datetime=_next_weekday(now, zone, 3, hour=14),
                        guest_details=GuestDetails(
                            name="Guest Demo", email=f"guest{index}@demo.slotwise.dev"
                        ),
                    ),
                )
    finally:
        await database.dispose()
    lines.append(f"Every demo account's password: {PASSWORD}")
    lines.append(f"  admin     {ADMIN[0]}")
    for spec in PROVIDERS:
        lines.append(f"  provider  {spec.email}  ({handles[spec.email]}, {spec.timezone})")
    for email, _ in CLIENTS:
        lines.append(f"  client    {email}")
    lines.append(
        f"Sign in: curl -X POST {settings.public_base_url.rstrip('/')}/api/v1/auth/login "
        f"-d 'username={CLIENTS[0][0]}&password={PASSWORD}'"
    )
    return lines

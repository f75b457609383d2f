"""The application factory: create_app(settings) wires routers, errors and lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute, iter_route_contexts

from slotwise import __version__, redis_client
from slotwise.admission import AdmissionMiddleware, Turns
from slotwise.apikeys import scopes
from slotwise.apikeys.router import router as api_keys_router
from slotwise.apikeys.uses import KeyUses
from slotwise.auth.deps import reads_token
from slotwise.auth.passwords import PasswordHasher
from slotwise.auth.reset_page import router as reset_page_router
from slotwise.auth.router import router as auth_router
from slotwise.auth.tokens import VerifiedAccessTokens
from slotwise.availability import changes
from slotwise.availability.cache import SlotCache
from slotwise.availability.ranking import Ranker, load_model
from slotwise.availability.router import provider_router as availability_router
from slotwise.availability.router import seed_router as availability_seed_router
from slotwise.availability.router import slots_router
from slotwise.availability.search_router import router as slot_search_router
from slotwise.availability.slots import SlotListings
from slotwise.availability.stream import SlotStreams
from slotwise.booking import busy as booking_busy
from slotwise.booking import history as booking_history
from slotwise.booking import publish
from slotwise.booking.guests import GuestPolicy
from slotwise.booking.queue import BookingQueue
from slotwise.booking.router import booking_router, guest_router, holds_router, standings_router
from slotwise.booking.router import provider_router as provider_booking_router
from slotwise.booking.router import router as appointments_router
from slotwise.booking.series_router import guest_router as series_guest_router
from slotwise.booking.series_router import router as series_router
from slotwise.booking.terms import TermsCache
from slotwise.booking.waitlist import POLICY_KEY as WAITLIST_POLICY
from slotwise.booking.waitlist import OfferSweeper, WaitlistPolicy, hand_on_released
from slotwise.booking.waitlist_router import provider_router as waitlist_provider_router
from slotwise.booking.waitlist_router import router as waitlist_router
from slotwise.booking.webhook_docs import describe_webhooks
from slotwise.booking.write import RELEASED_KEY
from slotwise.calendars.router import router as calendars_router
from slotwise.config import Settings, get_settings
from slotwise.db import Database
from slotwise.errors import install_error_handlers, responses
from slotwise.external.keys import CalendarKeys
from slotwise.external.router import router as external_calendars_router
from slotwise.external.sync import SyncPolicy, sync_providers
from slotwise.health import router as health_router
from slotwise.notifications import outbox
from slotwise.observability import Metrics, RequestContextMiddleware, configure_logging
from slotwise.outbound import OutboundGuard
from slotwise.providers.router import router as providers_router
from slotwise.ratelimit import RateLimiter
from slotwise.scheduling.ranking import RankingWeights
from slotwise.state import AppState
from slotwise.teams import booking as team_booking
from slotwise.teams.router import booking_router as team_booking_router
from slotwise.teams.router import my_invitations_router as team_invitations_router
from slotwise.teams.router import router as teams_router
from slotwise.users.router import router as users_router
from slotwise.webhooks.router import router as webhooks_router

API_PREFIX = "/api/v1"
GC_THRESHOLDS = (700, 10, 50)  # CPython's defaults but the last (10)

API_ROUTERS = [
    (auth_router, "/auth", "auth"),
    (calendars_router, "", "calendars"),  # before /users/{id} and /appointments/{id}
    # Before the provider routes, whose /providers/{ref}/... would take "me/calendars".
    (external_calendars_router, "/providers/me/calendars", "calendars"),
    (team_invitations_router, "/providers/me/team-invitations", "teams"),  # likewise
    (users_router, "/users", "users"),
    (slot_search_router, "/slots", "slots"),
    (teams_router, "/teams", "teams"),
    (availability_seed_router, "", "availability"),  # before /appointments/{id}
    (series_router, "/appointments", "series"),  # before /appointments/{id}
    (appointments_router, "/appointments", "appointments"),
    (series_guest_router, "/bookings", "series"),  # before /bookings/{token}
    (guest_router, "/bookings", "guest bookings"),
    (holds_router, "/holds", "holds"),
    (waitlist_router, "/waitlist", "waitlist"),
    (standings_router, "/client-standings", "client standings"),
    (webhooks_router, "/webhooks", "webhooks"),
    (api_keys_router, "/api-keys", "api keys"),
]
# One provider API, answering at /tutors and /doctors too (aliases, documented as such).
PROVIDER_PREFIXES = [("/providers", "providers"), ("/tutors", "aliases"), ("/doctors", "aliases")]
ALIASES_TAG = {
    "name": "aliases",
    "description": "`/tutors/...` and `/doctors/...` are aliases of `/providers/...`: the same "
    "operations on the same providers (a doctor is listed under /tutors too).",
}

DESCRIPTION = """
Slotwise publishes providers' working hours as bookable slots, takes bookings that can never
collide, and keeps everyone informed.

Every error has the same JSON shape: `{"code", "message", "details", "request_id"}`.
Authenticate with `Authorization: Bearer <access_token>` from `POST /api/v1/auth/login`,
or with an API key (`Authorization: Bearer sw_live_…`, from `POST /api/v1/api-keys`): an
operation's `x-api-key-scope` names the scope a key needs for it (`none`: no key may use it).
"""


def _document_common_errors(router: APIRouter) -> APIRouter:
    """Every route that takes input can answer 422; every body route 413 and 415; every
    route that reads a bearer token (even optionally) 401, for a bad one, 503 when the
    denylist's Redis is unreachable, and, for an API key, 403 outside the key's scopes and
    429 past its rate limit; such a route's document names the scope a key needs."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = [422]
        if reads_token(route.dependant):
            extra += [401, 403, 429, 503]
            scope = scopes.documented(route.endpoint, route.methods or ())
            route.openapi_extra = {**(route.openapi_extra or {}), scopes.OPENAPI_KEY: scope}
        if (route.methods or set()) & {"POST", "PUT", "PATCH"}:
            extra += [413, 415]
        for status, spec in responses(*extra).items():
            route.responses.setdefault(status, spec)
    return router


def create_app(settings: Settings) -> FastAPI:
    """The application of these settings: everything below receives the values it uses from
    here (routers from the state, services from their routers), never reads them globally."""
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    settings.signing_key()  # fail fast (or create the development key) at start-up
    redis = (
        redis_client.connect(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
        if settings.redis_url
        else None
    )
    slot_cache = SlotCache(max_bytes=settings.slot_cache_mb * 1_000_000)
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        session_info={
            # What this application's commits change, its slot cache hears of.
            changes.CACHE_KEY: slot_cache,
            # What every change that frees a place hands it on by (booking.waitlist), and
            # how a write's release of lapsed holds hands their time on (booking.write).
            WAITLIST_POLICY: WaitlistPolicy.from_settings(settings),
            RELEASED_KEY: hand_on_released,
        },
    )
    changes.follow(database.session_class)
    terms = TermsCache()
    calendar_appointments = publish.CalendarAppointments()
    calendar_keys = CalendarKeys([key.get_secret_value() for key in settings.calendar_keys])
    sweeper = OfferSweeper(database, every_seconds=settings.waitlist_sweep_seconds)
    slots = SlotListings(database, slot_cache, busy=booking_busy.BUSY)
    state = AppState(
        settings=settings,
        db=database,
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
        ),
        limiter=RateLimiter(enabled=settings.rate_limit_enabled, redis=redis),
        redis=redis,
        slots=slots,
        streams=SlotStreams(
            slots,
            limit=settings.slot_streams_max,
            refresh_seconds=settings.slot_stream_refresh_seconds,
            max_seconds=settings.slot_stream_max_seconds,
        ),
        access_tokens=VerifiedAccessTokens(settings),
        password_reset_mail=outbox.enqueue_password_reset,
        api_key_uses=KeyUses(database),
        terms=terms,
        bookings=BookingQueue(
            database,
            terms,
            redis,
            guests=GuestPolicy.from_settings(settings),
            pools=team_booking.pools,  # round-robin team bookings, pooled
        ),
        calendar_appointments=calendar_appointments,
        calendar_keys=calendar_keys,
        calendar_sync=SyncPolicy.of(
            appointments=calendar_appointments,
            guard=OutboundGuard.from_settings(settings),
            keys=calendar_keys,
            max_bytes=settings.calendar_max_bytes,
            sync_minutes=settings.calendar_sync_minutes,
            pause_after_hours=settings.calendar_pause_after_hours,
            default_timezone=settings.default_timezone,
        ),  # as external.worker.policy_of makes it, with this app's keys
        ranker=Ranker(
            RankingWeights(
                adjacent=settings.ranking_weight_adjacent,
                preferred=settings.ranking_weight_preferred,
                earlier=settings.ranking_weight_earlier,
                balance=settings.ranking_weight_balance,
                no_show=settings.ranking_weight_no_show,
            ),
            load_model(settings.ranking_model_path),
        ),
        client_history=booking_history.client_history,
    )

    if settings.calendar_sync_before_booking:
        policy = state.calendar_sync

        async def sync_calendars_first(refs: Sequence[str], now: datetime) -> None:
            await sync_providers(database, refs, policy=policy, now=now)

        state.before_booking = sync_calendars_first

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What start-up built (modules, the app, its models and routes, those FastAPI would
        # build at the first request too) lives as long as the process: frozen, out of the
        # collector's sight, so a full collection walks only what requests left behind. And
        # a full collection at most every 50 collections of the middle generation rather
        # than 10: requests allocate fast, and the objects alive across a request's awaits
        # are promoted, so with the default, long listings set off a full collection every
        # few requests, and those pauses were the tail of the booking latency
        # (docs/benchmarks.md, "Garbage collection", has the measurements).
        _build_routes(_app)
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sweeper.start()  # ended waitlist offers passed to the next in line
        yield
        await sweeper.aclose()
        await state.aclose()

    app = FastAPI(
        title="Slotwise",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[
            *({"name": tag} for tag in dict.fromkeys(["providers", *(t for *_, t in API_ROUTERS)])),
            ALIASES_TAG,
        ],
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.slotwise = state
    turns = Turns(settings.admission_limit)
    app.state.metrics = Metrics(turns)
    install_error_handlers(app, redis=redis is not None)

    # FastAPI tries routes in order (each costs a little): the hottest go first, slots,
    # bookings and their cancellations and reschedules, a provider's and a team's. The
    # first route whose path matches answers: tests/service/test_route_order.py checks
    # that every route is the first to match its own paths.
    app.include_router(
        _document_common_errors(slots_router), prefix=API_PREFIX + "/providers", tags=["providers"]
    )
    app.include_router(
        _document_common_errors(booking_router),
        prefix=API_PREFIX + "/appointments",
        tags=["appointments"],
    )
    app.include_router(
        _document_common_errors(team_booking_router), prefix=API_PREFIX + "/teams", tags=["teams"]
    )
    for router, prefix, tag in API_ROUTERS:
        app.include_router(_document_common_errors(router), prefix=API_PREFIX + prefix, tags=[tag])
    for prefix, tag in PROVIDER_PREFIXES:
        # The availability routes go first: /providers/availability is not a handle.
        routers = [
            availability_router,
            provider_booking_router,
            waitlist_provider_router,
            providers_router,
        ]
        if prefix != "/providers":
            routers.insert(0, slots_router)
        for router in routers:
            app.include_router(
                _document_common_errors(router), prefix=API_PREFIX + prefix, tags=[tag]
            )
    app.include_router(health_router)
    app.include_router(reset_page_router)
    describe_webhooks(app)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Inside the request context: a request's wait for its turn is in its logged duration.
    app.add_middleware(AdmissionMiddleware, turns=turns)
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, max_body_bytes=settings.max_body_bytes
    )
    return app


def _build_routes(app: FastAPI) -> None:
    """FastAPI builds an included router's routes (their dependants, fields and validators,
    about 50,000 objects here) when a request first looks through it: built now, they are
    frozen with the rest of start-up rather than walked by every full collection."""
    for _context in iter_route_contexts(app.router.routes):
        pass


def app_factory() -> FastAPI:
    """Entry point for uvicorn (``slotwise.main:app_factory`` with ``--factory``)."""
    return create_app(get_settings())

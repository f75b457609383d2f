"""Settings, read from the environment (prefix ``SLOTWISE_``) or a ``.env`` file.

Every setting is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import secrets
import warnings
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from slotwise.timezones import check_zone

DEV_SECRET_FILE = ".slotwise-secret"  # noqa: S105 - a file name, not a secret


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLOTWISE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'slotwise.db'}",
        description="SQLAlchemy async URL; default an SQLite file in the working directory.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Signs tokens. Required in production."
    )
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=7, ge=1, le=365)
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "slotwise"
    jwt_audience: str = "slotwise-api"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_timezone: str = "America/Guayaquil"
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(
        default=1.0, gt=0, le=30, description="Connect and answer timeout of each Redis call."
    )
    rate_limit_enabled: bool = True
    rate_limit_login_ip: str = "20/minute"
    rate_limit_login_account: str = "5/minute"  # failures per account and client address
    rate_limit_login_account_ceiling: str = "30/minute"  # failures per account, all addresses
    rate_limit_register_ip: str = "10/hour"
    rate_limit_refresh_ip: str = "30/minute"
    rate_limit_reset_ip: str = "10/hour"
    rate_limit_reset_account: str = "3/hour"
    rate_limit_guest_booking_ip: str = Field(
        default="20/hour", description="Bookings made without a token, per client address."
    )
    rate_limit_api_key: str = Field(
        default="600/minute", description="Requests per API key (each key has its own count)."
    )
    guest_max_active_bookings: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Upcoming bookings a guest email may hold with one provider.",
    )
    guest_verify_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="How long a held guest booking waits for its email to be verified.",
    )
    hold_minutes: int = Field(
        default=10, ge=1, le=60, description="How long POST /holds holds a slot."
    )
    hold_max_per_holder: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Live holds one holder (an account, or a client address) may have with "
        "one provider.",
    )
    rate_limit_hold_ip: str = Field(
        default="30/hour", description="Holds asked for (POST /holds), per client address."
    )
    waitlist_offer_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="How long a waitlist offer (a freed place held for the waiter) lasts "
        "before it passes to the next in line.",
    )
    waitlist_max_per_client: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Waitlists a client (or guest email) may be in with one provider at once.",
    )
    waitlist_sweep_seconds: float = Field(
        default=15,
        gt=0,
        description="How often each process passes ended waitlist offers to the next waiter.",
    )
    waitlist_offer_url: str = Field(
        default="",
        description="The page an offer's email links to, with {token} for the offer's hold "
        "token (e.g. https://book.example.com/offer/{token}). Empty: the email links to the "
        "hold itself (public_base_url + /api/v1/holds/{token}).",
    )
    rate_limit_waitlist_ip: str = Field(
        default="30/hour",
        description="Waitlist joins without a token (guests), per client address.",
    )
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    no_show_block_threshold: int = Field(default=3, ge=1, le=100)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"
    log_json: bool = False
    db_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Database connections per worker; default 20 on PostgreSQL, 3 on SQLite.",
    )
    slot_cache_mb: int = Field(
        default=32, ge=0, description="Slot listings each worker keeps in memory; 0: none."
    )
    admission_limit: int = Field(
        default=128,
        ge=0,
        description=(
            "Requests each worker works on at once; more wait their turn, in the order they "
            "came (docs/operations.md, 'Admission'). 0: no limit."
        ),
    )
    search_max_providers: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Providers (with the service searched for) one GET /slots/search reads; "
        "a search matching more is refused (400 search_too_broad).",
    )
    search_max_days: int = Field(
        default=14, ge=1, le=31, description="Dates one GET /slots/search spans at most."
    )
    ranking_weight_adjacent: float = Field(
        default=3.0, ge=0, le=100, description="Suggestions: a slot next to a booking."
    )
    ranking_weight_preferred: float = Field(
        default=2.0, ge=0, le=100, description="Suggestions: the client's usual days and hours."
    )
    ranking_weight_earlier: float = Field(
        default=1.0, ge=0, le=100, description="Suggestions: sooner dates."
    )
    ranking_weight_balance: float = Field(
        default=1.0, ge=0, le=100, description="Suggestions: providers (members) less booked."
    )
    ranking_weight_no_show: float = Field(
        default=2.0, ge=0, le=100, description="Suggestions: a penalty for times the client missed."
    )
    ranking_model_path: str | None = Field(
        default=None,
        description="A model file of `slotwise train-ranking`, loaded at start-up; without "
        "one (or one that cannot be read) the rules rank.",
    )
    slot_streams_max: int = Field(
        default=5000, ge=0, description="Live slot streams one worker keeps open at once."
    )
    slot_stream_ping_seconds: float = Field(
        default=15, gt=0, description="A live slot stream's heartbeat (an SSE comment)."
    )
    slot_stream_max_seconds: float = Field(
        default=3600,
        gt=0,
        description="How long a live slot stream stays open; the client then reconnects "
        "(EventSource does), to any worker.",
    )
    slot_stream_refresh_seconds: float = Field(
        default=30,
        gt=0,
        description="How often a live slot stream looks again with no change heard (time "
        "moves listings: notice, guests' holds).",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server; none writes messages to mail_dir instead."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_timeout_seconds: float = Field(default=30, gt=0)
    mail_from: str = "Slotwise <no-reply@slotwise.invalid>"
    mail_dir: Path = Field(default=Path("var/mail"), description="Where unsent-by-SMTP mail goes.")
    reminder_offsets_minutes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1440],
        description="Reminders before each confirmed appointment, in minutes (e.g. 1440,60).",
    )
    worker_poll_seconds: float = Field(default=5, gt=0)
    worker_batch_size: int = Field(default=50, ge=1, le=1000)
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_retry_base_seconds: float = Field(default=30, gt=0)
    outbox_lease_seconds: float = Field(default=300, gt=0)
    retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Sent, withdrawn and given-up emails and finished webhook deliveries (with "
        "their attempts) are deleted once this old (slotwise.housekeeping).",
    )
    housekeeping_minutes: float = Field(
        default=60, gt=0, description="How often the worker runs a housekeeping pass."
    )
    run_worker_in_serve: bool | None = Field(
        default=None, description="`slotwise serve` starts a worker; default: in development."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the API is reached from outside; unset, `serve` derives it from "
        "the address it binds (served_base_url).",
    )
    guest_manage_url: str = Field(
        default="",
        description=(
            "Where a guest manages a booking, with {token} for its manage token "
            "(e.g. https://book.example.com/manage/{token}); when set, the guest's first email "
            "carries the link. Empty: no link is mailed."
        ),
    )
    guest_series_manage_url: str = Field(
        default="",
        description=(
            "Where a guest manages a recurring series, with {token} for the series' manage "
            "token (e.g. https://book.example.com/manage/series/{token}); the series' first "
            "email carries the link. Empty: guest_manage_url with series/ before {token} "
            "(no link when that is empty too)."
        ),
    )
    password_reset_minutes: int = Field(default=60, ge=5, le=24 * 60)
    password_reset_url: str = Field(
        default="",
        description=(
            "The link a password reset email carries, with {token} for the token "
            "(e.g. https://app.example.com/reset?token={token}). Empty: Slotwise's own page, "
            "public_base_url + /reset-password?token=..."
        ),
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Hosts and networks (CIDRs) that webhooks may reach although they are not public "
            "(loopback, private, link-local, metadata), comma-separated; empty: none."
        ),
    )
    outbound_allow_http: bool = Field(
        default=False, description="Webhooks may use plain http (never in production)."
    )
    outbound_connect_timeout_seconds: float = Field(default=5, gt=0, le=60)
    outbound_timeout_seconds: float = Field(
        default=15, gt=0, le=120, description="The whole of one webhook call."
    )
    outbound_response_max_bytes: int = Field(
        default=4096, ge=0, le=1_048_576, description="Of a webhook's answer, read and kept."
    )
    webhook_secret_overlap_hours: int = Field(
        default=24, ge=0, le=24 * 30, description="A rotated secret signs too for this long."
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, le=50, description="Tries of a delivery before it is kept as failed."
    )
    webhook_retry_base_seconds: float = Field(
        default=40, gt=0, description="Retry backoff: base * 2**(attempts-1); 12 tries: about 23 h."
    )
    webhook_disable_after_hours: int = Field(
        default=72, ge=1, description="A subscription failing this long is disabled."
    )
    calendar_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys that encrypt connected calendars' credentials, "
        "comma-separated: the first encrypts, all decrypt (rotation). Empty: calendars "
        "cannot be connected (503 calendar_keys_not_configured).",
    )
    calendar_sync_minutes: float = Field(
        default=5, gt=0, le=24 * 60, description="How often each connected calendar is synced."
    )
    calendar_max_bytes: int = Field(
        default=10_000_000,
        ge=1024,
        le=200_000_000,
        description="The largest calendar (an iCalendar file, a CalDAV answer) read.",
    )
    calendar_pause_after_hours: float = Field(
        default=24,
        gt=0,
        description="A calendar failing this long is paused and its provider emailed.",
    )
    calendar_sync_before_booking: bool = Field(
        default=False,
        description="Sync the provider's calendars before each new time of theirs is placed "
        "(a booking, a series, a hold, a reschedule, a team's booking): a fetch each time.",
    )
    calendar_max_per_provider: int = Field(
        default=10, ge=1, le=100, description="Calendars one provider may connect."
    )

    @field_validator("cors_origins", "outbound_allow", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("calendar_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("calendar_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            try:
                Fernet(key.get_secret_value().encode())
            except (ValueError, TypeError):
                raise ValueError(
                    "calendar_keys: each key must be a Fernet key (32 url-safe base64 bytes;"
                    " `slotwise calendar-key` makes one)"
                ) from None
        return value

    @field_validator("reminder_offsets_minutes", mode="before")
    @classmethod
    def _split_offsets(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("reminder_offsets_minutes")
    @classmethod
    def _positive_offsets(cls, value: list[int]) -> list[int]:
        if any(offset <= 0 for offset in value):
            raise ValueError("reminder offsets must be positive minutes")
        return sorted(set(value), reverse=True)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator(
        "guest_manage_url", "guest_series_manage_url", "password_reset_url", "waitlist_offer_url"
    )
    @classmethod
    def _link_template(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value and (not value.startswith(("https://", "http://")) or "{token}" not in value):
            raise ValueError(f"{info.field_name} must be an http(s) URL containing {{token}}")
        return value

    @field_validator("jwt_algorithm")
    @classmethod
    def _hmac_only(cls, value: str) -> str:
        if value not in {"HS256", "HS384", "HS512"}:
            raise ValueError("jwt_algorithm must be one of HS256, HS384, HS512")
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _allowlist_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            if any(character.isspace() or character in "/:@?#" for character in entry):
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"outbound_allow: not a host or CIDR: {entry!r}") from None
        return value

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if self.outbound_allow_http:
                raise ValueError("SLOTWISE_OUTBOUND_ALLOW_HTTP must not be set in production")
            if self.secret_key is None:
                raise ValueError("SLOTWISE_SECRET_KEY must be set in production")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("SLOTWISE_SECRET_KEY must be at least 32 characters")
        return self

    @property
    def worker_in_serve(self) -> bool:
        if self.run_worker_in_serve is not None:
            return self.run_worker_in_serve
        return self.env is Environment.DEVELOPMENT

    @property
    def series_manage_url(self) -> str:
        """The link template a guest's series is managed by: its own setting, or the
        booking's with ``series/`` before the token (the API's own paths: /bookings/{token},
        /bookings/series/{token}); empty when both are."""
        if self.guest_series_manage_url:
            return self.guest_series_manage_url
        return self.guest_manage_url.replace("{token}", "series/{token}")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The token signing key; in development one is generated once and kept on disk."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = Path(DEV_SECRET_FILE)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
            warnings.warn(
                f"SLOTWISE_SECRET_KEY is not set: generated a development key in {path}. "
                "Set SLOTWISE_SECRET_KEY in production.",
                stacklevel=2,
            )
        key = path.read_text().strip()
        self.secret_key = SecretStr(key)
        return key


def served_base_url(host: str, port: int) -> str:
    """The URL of what ``serve --host HOST --port PORT`` answers, as a client on this machine
    reaches it: a wildcard address (all interfaces) is read as loopback."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - read, not bound
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

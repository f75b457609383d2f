"""The rows that slot listings and booking terms are computed from, declared once.

Two caches keep what is computed from these rows: each worker's slot listings
(``availability.cache``, told of changes by ``availability.changes``) and each worker's
booking terms (``booking.terms``, proven current by ``providers.rules_version``). Both rely
on hearing of every change to every row they were computed from, so both are derived from
this one list, and tests hold the rest to it:

- the tables that ``booking.terms.read`` and a slot listing query must be exactly those
  declared here (``tests/availability/test_sources.py`` captures their statements);
- the database must have, for each table, the triggers that announce a change to the slot
  caches (migrations 0006 and 0008) and, for each table terms are read from, the triggers
  that raise the provider's rules version (migrations 0009 and 0012): that test reads the
  triggers of both SQLite and PostgreSQL back and compares them with this declaration;
- this worker's own commits are reported to its slot cache by the same declaration
  (``changes.concerned``);
- a change to a row of a source that is ``described_by`` columns (the appointments) is
  announced with those columns, so kept listings apply it rather than forget themselves;
  the same test holds the triggers to that list.

A new table that terms or listings read therefore fails the suite until it is declared
here and a migration gives it its triggers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Names(StrEnum):
    """What a source's key column holds: whose schedule a row is part of."""

    PROVIDER = "provider"  # a provider's id (providers.id)
    USER = "user"  # a provider's user's id (providers.user_id)


@dataclass(frozen=True, slots=True)
class Source:
    table: str
    column: str  # the column naming whose schedule a row is part of
    names: Names
    in_terms: bool  # booking terms are read from it (and raise the rules version)
    # The columns a change notice carries for a row (none: it names only whose schedule
    # changed, and kept listings of that schedule are voided): enough for a kept listing to
    # apply the change itself (``availability.busy.BusyReader.taken``).
    described_by: tuple[str, ...] = ()

    @property
    def is_the_provider(self) -> bool:
        """The provider's own row (the one that holds its rules version)."""
        return self.table == "providers"

    @property
    def terms_events(self) -> frozenset[str]:
        """The changes to a row after which kept terms must not pass for current: any
        change to its hours and services; an update of its account (an account inserted has
        no profile yet, one deleted takes its profile with it); an update of its profile, or
        the profile inserted (under an id it may have had before: migration 0012 starts it
        at a version no kept terms hold; a profile deleted leaves no version to match)."""
        if self.is_the_provider:
            return frozenset({"INSERT", "UPDATE"})
        if self.names is Names.USER:
            return frozenset({"UPDATE"})
        return frozenset({"INSERT", "UPDATE", "DELETE"})


SOURCES = (
    Source("providers", "id", Names.PROVIDER, in_terms=True),
    Source("users", "id", Names.USER, in_terms=True),
    Source("services", "provider_id", Names.PROVIDER, in_terms=True),
    Source("weekly_patterns", "provider_id", Names.PROVIDER, in_terms=True),
    Source("date_overrides", "provider_id", Names.PROVIDER, in_terms=True),
    Source("time_off", "provider_id", Names.PROVIDER, in_terms=True),
    # Busy time read from the provider's own calendars (``slotwise.external``): terms, like
    # time off, so a sync that changes it raises the rules version, and a booking decided on
    # kept terms is proven to have seen it.
    Source("calendar_busy", "provider_id", Names.PROVIDER, in_terms=True),
    # Busy time: read by every listing, and by every booking afresh (never kept in terms).
    Source(
        "appointments",
        "provider_id",
        Names.PROVIDER,
        in_terms=False,
        described_by=(
            "id",
            "status",
            "start_at",
            "blocked_start_at",
            "blocked_end_at",
            "hold_until",
            "session_key",
            "service_id",
            "capacity",
        ),
    ),
)
BY_TABLE = {source.table: source for source in SOURCES}
SLOT_TABLES = frozenset(BY_TABLE)
TERMS_TABLES = frozenset(source.table for source in SOURCES if source.in_terms)

"""The declaration of what slot listings and booking terms are computed from
(``availability.sources``) is the truth: the queries that read terms and listings touch
exactly the tables it declares, and the database (SQLite and PostgreSQL) has, for every
one, the triggers that tell the slot caches and raise the provider's rules version, mapping
a row to its provider as declared."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from slotwise import scheduling
from slotwise.availability import changes, sources
from slotwise.availability.models import CalendarBusy, DateOverride, TimeOff, WeeklyPattern
from slotwise.booking import terms
from slotwise.booking.models import Appointment
from slotwise.config import Settings
from slotwise.models import Base
from slotwise.providers.models import Provider, Service
from slotwise.users.models import User
from tests.factories import BOOKING_NOW, Account, bookable_provider

DAY = "2027-03-03"


def tables_in(statement: str) -> set[str]:
    """The Slotwise tables a SQL statement names."""
    return {
        name
        for name in Base.metadata.tables
        if re.search(rf'(?<![\w.]){re.escape(name)}(?!\w)"?', statement)
    }


@contextmanager
def tables_read(app: FastAPI) -> Iterator[set[str]]:
    """The tables named by every statement the app's engine runs meanwhile."""
    found: set[str] = set()
    engine = app.state.slotwise.db.engine.sync_engine

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        found.update(tables_in(statement))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_the_table_reader_reads_names_not_parts_of_names() -> None:
    assert tables_in('SELECT appointment_events.id FROM "appointment_events"') == {
        "appointment_events"
    }
    assert tables_in("SELECT users_1.id FROM providers JOIN users AS users_1 ON ...") == {
        "providers",
        "users",
    }
    assert tables_in("SELECT services.provider_id FROM services") == {"services"}


def test_every_source_is_a_table_with_its_column() -> None:
    for source in sources.SOURCES:
        assert source.column in Base.metadata.tables[source.table].columns, source


@pytest.fixture
async def provider(client: httpx.AsyncClient) -> tuple[Account, dict[str, Any]]:
    """A provider with a row of every kind its terms and listings are read from."""
    account, profile = await bookable_provider(client, session_duration_minutes=60)
    for path, body in (
        ("/providers/me/services", {"name": "Intro", "duration_minutes": 30}),
        ("/providers/me/date-overrides", {"date": DAY, "kind": "unavailable"}),
        ("/providers/me/time-off", {"start_date": "2027-03-10", "end_date": "2027-03-11"}),
    ):
        made = await client.post(path, headers=account.headers, json=body)
        assert made.status_code == 201, made.text
    return account, profile


async def test_terms_are_read_from_exactly_the_declared_tables(
    app: FastAPI, provider: tuple[Account, dict[str, Any]]
) -> None:
    _account, profile = provider
    async with app.state.slotwise.db.session(writes=False) as session:
        with tables_read(app) as read:
            known = await terms.read(session, profile["public_handle"], now=BOOKING_NOW)
            far = known.terms.last_date + timedelta(days=30)  # read apart from the kept dates
            staff_move = scheduling.Request(
                None, datetime.combine(far, time(9)), kind=scheduling.Kind.STAFF_MOVE
            )
            widened = await terms.covering(session, known, staff_move)
            assert widened.covers(far)
    assert read == sources.TERMS_TABLES


async def test_listings_are_read_from_exactly_the_declared_tables(
    client: httpx.AsyncClient, app: FastAPI, provider: tuple[Account, dict[str, Any]]
) -> None:
    account, profile = provider
    services = (await client.get("/providers/me/services", headers=account.headers)).json()
    path = f"/providers/{profile['public_handle']}/slots"
    with tables_read(app) as read:
        for params in (
            {"date": "2027-03-04"},
            {"from": "2027-03-02", "to": "2027-03-12", "service": services[0]["id"]},
            {"date": "2027-03-05", "slot_duration": 30, "tz": "Asia/Tokyo"},
        ):
            listed = await client.get(path, params=params)
            assert listed.status_code == 200, listed.text
    assert read == sources.SLOT_TABLES


def test_this_workers_commits_name_whom_each_source_row_concerns() -> None:
    provider_id, user_id = uuid.uuid4(), uuid.uuid4()
    rows: dict[str, Any] = {
        "providers": Provider(id=provider_id, user_id=user_id),
        "users": User(id=user_id),
        "services": Service(provider_id=provider_id),
        "weekly_patterns": WeeklyPattern(provider_id=provider_id),
        "date_overrides": DateOverride(provider_id=provider_id),
        "time_off": TimeOff(provider_id=provider_id),
        "calendar_busy": CalendarBusy(provider_id=provider_id),
        "appointments": Appointment(provider_id=provider_id),
    }
    assert set(rows) == sources.SLOT_TABLES
    for table, row in rows.items():
        whom = user_id if sources.BY_TABLE[table].names is sources.Names.USER else provider_id
        assert list(changes.concerned(row)) == [whom], table
    assert list(changes.concerned(object())) == []


# -- the database's triggers -------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    events: frozenset[str]  # INSERT, UPDATE, DELETE, TRUNCATE (an UPDATE OF columns: none)
    row_level: bool
    enabled: bool
    body: str  # what it runs: its function's source (PostgreSQL), its statements (SQLite)
    args: tuple[str, ...] = ()


_PG_TRIGGERS = """
SELECT t.tgname, c.relname, t.tgtype, t.tgenabled <> 'D', p.prosrc,
       encode(t.tgargs, 'escape'), t.tgattr::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND n.nspname = current_schema()
"""
_PG_EVENTS = {4: "INSERT", 8: "DELETE", 16: "UPDATE", 32: "TRUNCATE"}
_SQLITE_HEAD = re.compile(
    r"CREATE\s+TRIGGER\s+\S+\s+(?:BEFORE|AFTER|INSTEAD\s+OF)?\s*"
    r"(INSERT|DELETE|UPDATE(?:\s+OF\s+[\w\s,]+?)?)\s+ON\s+\"?(\w+)",
    re.IGNORECASE,
)


async def database_triggers(engine: AsyncEngine) -> list[Trigger]:
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = (await connection.execute(text(_PG_TRIGGERS))).all()
            return [_pg_trigger(*row) for row in rows]
        rows = (
            await connection.execute(
                text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            )
        ).all()
        return [_sqlite_trigger(*row) for row in rows]


def _pg_trigger(
    name: str, table: str, kind: int, enabled: bool, body: str, args: str, columns: str
) -> Trigger:
    events = {event for bit, event in _PG_EVENTS.items() if kind & bit}
    if columns.strip():  # UPDATE OF some columns only
        events.discard("UPDATE")
    return Trigger(
        name=name,
        table=table,
        events=frozenset(events),
        row_level=bool(kind & 1),
        enabled=enabled,
        body=body,
        args=tuple(arg for arg in args.split("\\000") if arg),
    )


def _sqlite_trigger(name: str, table: str, sql: str) -> Trigger:
    head = _SQLITE_HEAD.search(sql)
    assert head is not None, sql
    event = head.group(1).upper()
    return Trigger(
        name=name,
        table=table,
        events=frozenset() if event.startswith("UPDATE OF") else frozenset({event}),
        row_level=True,
        enabled=True,  # SQLite cannot disable a trigger
        body=sql[head.end() :],
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(settings.database_url)
    yield made
    await made.dispose()


def _announces(trigger: Trigger, dialect: str) -> bool:
    """Tells the slot caches of a change (a notice, or a row in SQLite's change log)."""
    if dialect == "postgresql":
        return "pg_notify" in trigger.body and "slotwise_schedule" in trigger.body
    return trigger.table != "schedule_changes" and "INTO schedule_changes" in trigger.body


def _raises_version(trigger: Trigger) -> bool:
    return "rules_version" in trigger.body


def _names_whom(trigger: Trigger, source: sources.Source, dialect: str) -> bool:
    """The trigger finds the provider whose version it raises as the source says."""
    column = re.escape(source.column)
    if source.is_the_provider:
        pattern = r"NEW\.rules_version\s*:=" if dialect == "postgresql" else r"\bid = NEW\.id\b"
    elif source.names is sources.Names.USER:
        pattern = rf"\buser_id = (NEW|OLD)\.{column}\b"
    else:
        pattern = rf"\bid (= (NEW|OLD)\.{column}\b|IN \((NEW|OLD)\.{column}\b)"
    return re.search(pattern, trigger.body) is not None


def _covered(triggers: list[Trigger]) -> frozenset[str]:
    return frozenset().union(*(t.events for t in triggers if t.enabled and t.row_level))


def announcing_problems(triggers: list[Trigger], dialect: str) -> list[str]:
    """How the triggers that tell the slot caches differ from the declaration."""
    announcing = [t for t in triggers if _announces(t, dialect)]
    problems: list[str] = []
    if {t.table for t in announcing} != sources.SLOT_TABLES:
        problems.append(f"announced: {sorted({t.table for t in announcing})}")
    for source in sources.SOURCES:
        own = [t for t in announcing if t.table == source.table]
        if not _covered(own) >= {"INSERT", "UPDATE", "DELETE"}:
            problems.append(f"{source.table}: announces only {sorted(_covered(own))}")
        for trigger in own:
            if not trigger.row_level:
                continue
            if dialect == "postgresql":  # one function: the column is the trigger's argument
                named = trigger.args == (source.column,)
            else:
                named = bool(re.search(rf"\b(NEW|OLD)\.{source.column}\b", trigger.body))
            if not named:
                problems.append(f"{trigger.name}: does not name {source.column}")
            # A row's notice carries the columns a kept listing applies the change with.
            if source.described_by and trigger.events & {"INSERT", "UPDATE"}:
                missing = [
                    described
                    for described in source.described_by
                    if not re.search(rf"\bNEW\.{described}\b", trigger.body)
                ]
                if missing:
                    problems.append(f"{trigger.name}: does not describe {missing}")
        if dialect == "postgresql" and not any("TRUNCATE" in t.events for t in own):
            problems.append(f"{source.table}: a TRUNCATE is not announced")
    # The PostgreSQL listener's heartbeat checks that these very triggers are armed.
    row_level = {t.name for t in announcing if t.row_level}
    if dialect == "postgresql" and row_level != set(changes.TRIGGER_NAMES):
        problems.append(f"the listener checks {changes.TRIGGER_NAMES}, not {sorted(row_level)}")
    return problems


def version_problems(triggers: list[Trigger], dialect: str) -> list[str]:
    """How the triggers that raise providers' rules versions differ from the declaration."""
    raising = [t for t in triggers if _raises_version(t)]
    problems: list[str] = []
    if {t.table for t in raising} != sources.TERMS_TABLES:
        problems.append(f"raise the version: {sorted({t.table for t in raising})}")
    for source in sources.SOURCES:
        if not source.in_terms:
            continue
        own = [t for t in raising if t.table == source.table]
        if not _covered(own) >= source.terms_events:
            problems.append(f"{source.table}: raises the version only on {sorted(_covered(own))}")
        for trigger in own:
            if trigger.row_level and not _names_whom(trigger, source, dialect):
                problems.append(f"{trigger.name}: does not find the provider by {source.column}")
        truncated = any("TRUNCATE" in t.events for t in own)
        if dialect == "postgresql" and "DELETE" in source.terms_events and not truncated:
            problems.append(f"{source.table}: a TRUNCATE raises no version")
    return problems


async def test_the_databases_triggers_follow_the_declaration(engine: AsyncEngine) -> None:
    triggers = await database_triggers(engine)
    assert announcing_problems(triggers, engine.dialect.name) == []
    assert version_problems(triggers, engine.dialect.name) == []


# A negative control each: one trigger gone, or (PostgreSQL) disabled, is found.
MISSING = {
    "sqlite": [
        ("DROP TRIGGER date_overrides_logged_delete", "date_overrides: announces only"),
        ("DROP TRIGGER time_off_rules_update", "time_off: raises the version only"),
        ("DROP TRIGGER users_rules_changed", "raise the version: ["),
        ("DROP TRIGGER calendar_busy_rules_delete", "calendar_busy: raises the version only"),
        (
            "DROP TRIGGER appointments_logged_update;\n"
            "CREATE TRIGGER appointments_logged_update AFTER UPDATE ON appointments"
            " BEGIN INSERT INTO schedule_changes (ref) VALUES (NEW.provider_id); END",
            "appointments_logged_update: does not describe",
        ),
    ],
    "postgresql": [
        ("DROP TRIGGER time_off_schedule_changed ON time_off", "time_off: announces only"),
        (
            "ALTER TABLE services DISABLE TRIGGER services_rules_changed",
            "services: raises the version only",
        ),
        ("DROP TRIGGER users_rules_changed ON users", "raise the version: ["),
        (
            "DROP TRIGGER calendar_busy_schedule_changed ON calendar_busy",
            "calendar_busy: announces only",
        ),
        ("DROP TRIGGER appointments_schedule_truncated ON appointments", "TRUNCATE"),
        (
            "CREATE OR REPLACE TRIGGER appointments_schedule_changed"
            " AFTER INSERT OR UPDATE OR DELETE ON appointments"
            " FOR EACH ROW EXECUTE FUNCTION slotwise_schedule_changed('provider_id')",
            "appointments_schedule_changed: does not describe",
        ),
    ],
}


@pytest.mark.parametrize("case", range(6))
async def test_a_missing_trigger_is_found(engine: AsyncEngine, case: int) -> None:
    cases = MISSING[engine.dialect.name]
    if case >= len(cases):
        pytest.skip("no such case on this database")
    statement, problem = cases[case]
    async with engine.begin() as connection:
        for one in statement.split(";\n"):  # one statement at a time
            await connection.execute(text(one))
    triggers = await database_triggers(engine)
    found = [
        *announcing_problems(triggers, engine.dialect.name),
        *version_problems(triggers, engine.dialect.name),
    ]
    assert any(problem in line for line in found), found

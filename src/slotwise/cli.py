"""The ``slotwise`` command: serve, worker, migrate, create-admin, demo, train-ranking."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from datetime import datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn

from slotwise import migrate as migrations
from slotwise.config import Settings, get_settings, served_base_url

if TYPE_CHECKING:
    from slotwise import ranking_training

app = typer.Typer(help="Slotwise: appointment-scheduling backend.", no_args_is_help=True)


LOOPBACK = "127.0.0.1"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Stopped(BaseException):
    """SIGTERM or SIGINT reached `serve`: unwinds like KeyboardInterrupt (past ``except
    Exception``), so that what `serve` started is stopped on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signum)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = LOOPBACK,
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")
    ] = True,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    with_worker: Annotated[
        bool | None,
        typer.Option(
            "--with-worker/--no-worker",
            help="Also run the mail worker in its own process "
            "(default: SLOTWISE_RUN_WORKER_IN_SERVE, on in development).",
        ),
    ] = None,
    graceful_timeout: Annotated[
        int,
        typer.Option(
            min=0,
            help="When stopped (SIGTERM, SIGINT): seconds given to the requests under way, "
            "and to the mail worker for the batch in hand, before they are cut short.",
        ),
    ] = 30,
) -> None:
    """Apply migrations, then run the HTTP API with uvicorn (and, in development, the worker).

    SIGTERM or SIGINT stops it and everything it started, within ``--graceful-timeout``."""
    settings = _served_at(get_settings(), host, port)
    # The app reads its settings afresh, in this process or uvicorn's workers: from here.
    os.environ["SLOTWISE_PUBLIC_BASE_URL"] = settings.public_base_url
    get_settings.cache_clear()
    settings.signing_key()
    # uvicorn handles the signals while it serves, then re-raises the one it got, as the
    # handler it found: this one, which unwinds to the clean-up below. Python's default
    # action for SIGTERM would end the process at once and orphan the mail worker.
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in STOP_SIGNALS}
    mailer: BaseProcess | None = None
    stopped_by: int | None = None
    try:
        if migrate:
            migrations.upgrade(settings.database_url)
        if settings.worker_in_serve if with_worker is None else with_worker:
            mailer = multiprocessing.get_context("spawn").Process(
                target=_worker_process, name="slotwise-worker", daemon=True
            )
            mailer.start()
        uvicorn.run(
            "slotwise.main:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=None if reload else workers,
            reload=reload,
            proxy_headers=True,
            access_log=False,
            timeout_graceful_shutdown=graceful_timeout,
        )
    except _Stopped as stop:
        stopped_by = stop.signum
    finally:
        for signum in STOP_SIGNALS:  # a second signal does not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        if mailer is not None:
            _stop_worker(mailer, timeout=graceful_timeout)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped_by is not None:
        # End as the signal ends a process, as uvicorn meant to: a supervisor sees it.
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(stopped_by, signal.SIG_DFL)
        signal.raise_signal(stopped_by)


def _served_at(settings: Settings, host: str, port: int) -> Settings:
    """Unless SLOTWISE_PUBLIC_BASE_URL says otherwise, links (calendar feeds, password
    resets, the demo's sign-in line) point at the address served."""
    if "public_base_url" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"public_base_url": served_base_url(host, port)})


def _stop_worker(mailer: BaseProcess, *, timeout: int) -> None:
    """SIGTERM: the worker finishes the batch in hand, then stops; killed if it takes longer
    than ``timeout`` (a message it had claimed is sent again when its lease expires)."""
    mailer.terminate()
    mailer.join(timeout=timeout)
    if mailer.exitcode is None:
        typer.echo(f"the mail worker did not stop within {timeout} s: killed", err=True)
        mailer.kill()
        mailer.join()


def _worker_process() -> None:
    asyncio.run(_run_worker())


async def _run_worker() -> None:
    from slotwise import housekeeping
    from slotwise.booking.publish import CalendarAppointments, reminder_still_due
    from slotwise.external import worker as calendars_worker
    from slotwise.notifications.worker import run
    from slotwise.observability import configure_logging
    from slotwise.webhooks import worker as webhooks_worker

    settings = get_settings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # started by `serve`: stop, too, if it dies without a word

        def orphaned() -> None:
            loop.remove_reader(parent.sentinel)
            stop.set()

        loop.add_reader(parent.sentinel, orphaned)
    await asyncio.gather(
        run(settings, reminder_still_due, stop),
        webhooks_worker.run(settings, stop),
        housekeeping.run(settings, stop),
        calendars_worker.run(settings, stop, appointments=CalendarAppointments()),
    )


@app.command()
def worker(
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")
    ] = True,
) -> None:
    """Deliver queued email, reminders and webhooks, sync connected calendars and keep
    finished rows pruned (slotwise.housekeeping), until stopped (SIGINT or SIGTERM).

    On PostgreSQL, run as many as you like; on SQLite, run one.
    """
    settings = get_settings()
    if migrate:
        migrations.upgrade(settings.database_url)
    asyncio.run(_run_worker())


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option(help="Downgrade to REVISION instead.")] = False,
) -> None:
    """Apply (or with --down, roll back) database migrations."""
    url = get_settings().database_url
    if down:
        migrations.downgrade(url, revision)
    else:
        migrations.upgrade(url, revision)
    typer.echo(f"database at {'down' if down else 'up'} to {revision}")


@app.command()
def prune() -> None:
    """Delete what has served its purpose now, as the worker does every
    SLOTWISE_HOUSEKEEPING_MINUTES: expired tokens; emails and webhook deliveries finished
    more than SLOTWISE_RETENTION_DAYS ago."""
    from datetime import UTC, datetime, timedelta

    from slotwise import housekeeping
    from slotwise.db import Database

    settings = get_settings()

    async def one_pass() -> housekeeping.Pruned:
        db = Database(settings.database_url, pool_size=1)
        try:
            return await housekeeping.prune(
                db, now=datetime.now(UTC), retention=timedelta(days=settings.retention_days)
            )
        finally:
            await db.dispose()

    pruned = asyncio.run(one_pass())
    for table, count in pruned.counts.items():
        typer.echo(f"{table}: {count} deleted")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="The admin's email.")],
    full_name: Annotated[str, typer.Option(prompt=True, help="The admin's name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="SLOTWISE_ADMIN_PASSWORD",
            help="The admin's password.",
        ),
    ],
) -> None:
    """Create an admin account: the only way to make the first admin."""
    from slotwise.users.admin import create_admin as create

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    try:
        user_id = asyncio.run(create(settings, email=email, full_name=full_name, password=password))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"admin {email} created (id {user_id})")


@app.command("calendar-key")
def calendar_key() -> None:
    """Print a new key for SLOTWISE_CALENDAR_KEYS (put it first to rotate to it)."""
    from slotwise.external.keys import new_key

    typer.echo(new_key())


@app.command("rotate-calendar-keys")
def rotate_calendar_keys() -> None:
    """Encrypt every connected calendar's credentials again with the first of
    SLOTWISE_CALENDAR_KEYS (then the keys after it may be removed)."""
    from slotwise.external.rotation import rotate_all

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    try:
        count = asyncio.run(rotate_all(settings))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"{count} calendars encrypted with the first key")


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Where `serve` will listen (sign-in line).")] = LOOPBACK,
    port: Annotated[int, typer.Option(help="Where `serve` will listen (sign-in line).")] = 8000,
    history: Annotated[
        bool,
        typer.Option(
            "--history", help="Also half a year of simulated past bookings (train-ranking's data)."
        ),
    ] = False,
) -> None:
    """Fill the database with demo providers, services, hours, clients and appointments."""
    from datetime import UTC, datetime

    from slotwise.demo import populate

    settings = _served_at(get_settings(), host, port)
    migrations.upgrade(settings.database_url)
    now = datetime.now(UTC)
    for line in asyncio.run(populate(settings, now=now)):
        typer.echo(line)
    if history:
        written = asyncio.run(_simulate(settings, now))
        typer.echo(f"Simulated history: {written} past bookings written (0: there already)")


async def _simulate(settings: Settings, now: datetime) -> int:
    from slotwise.db import Database
    from slotwise.demo_history import simulate

    database = Database(settings.database_url, pool_size=1)
    try:
        return await simulate(database, now=now)
    finally:
        await database.dispose()


@app.command("train-ranking")
def train_ranking(
    out: Annotated[Path, typer.Option(help="Where to write the model file.")] = Path(
        "ranking-model.json"
    ),
    holdout: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="The latest share of bookings held out.")
    ] = 0.2,
) -> None:
    """Fit the slot-ranking model on the appointment history (the `ranking` extra), report
    its top-3 hit rate on the latest bookings against the rules and earliest-first, and
    write it (SLOTWISE_RANKING_MODEL_PATH loads it)."""
    from datetime import UTC, datetime

    from slotwise import ranking_training as training

    settings = get_settings()
    now = datetime.now(UTC)
    found = asyncio.run(_cases(settings, now))
    earlier, later = training.split(found, holdout)
    if not earlier or not later:
        typer.echo("Not enough history to train on (try `slotwise demo --history`).", err=True)
        raise typer.Exit(1)
    try:
        model = training.fit(earlier, version=training.version_of(now))
    except training.ExtraMissing as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    rates = training.evaluate(later, model)
    typer.echo(f"Fitted on {len(earlier)} bookings; held out the latest {len(later)}.")
    typer.echo("Picked slot in the top 3:")
    for name, rate in rates.items():
        typer.echo(f"  {name:<15} {rate:6.1%}")
    training.write(model, out, trained_on=len(earlier), held_out=rates)
    typer.echo(f"Model {model.version} written to {out}")


async def _cases(settings: Settings, now: datetime) -> list[ranking_training.Case]:
    from slotwise import ranking_training as training
    from slotwise.db import Database

    database = Database(settings.database_url, pool_size=1)
    try:
        return await training.cases(database, now=now)
    finally:
        await database.dispose()


if __name__ == "__main__":
    app()

"""The ``slotwise`` command: serve, worker, migrate, create-admin, demo."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from typing import Annotated

import typer
import uvicorn

from slotwise import migrate as migrations
from slotwise.config import get_settings

app = typer.Typer(help="Slotwise: appointment-scheduling backend.", no_args_is_help=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
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
) -> None:
    """Apply migrations, then run the HTTP API with uvicorn (and, in development, the worker)."""
    settings = get_settings()
    settings.signing_key()
    if migrate:
        migrations.upgrade(settings.database_url)
    mailer = None
    if settings.worker_in_serve if with_worker is None else with_worker:
        mailer = multiprocessing.get_context("spawn").Process(
            target=_worker_process, name="slotwise-worker", daemon=True
        )
        mailer.start()
    try:
        uvicorn.run(
            "slotwise.main:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=None if reload else workers,
            reload=reload,
            proxy_headers=True,
            access_log=False,
        )
    finally:
        if mailer is not None:
            mailer.terminate()  # SIGTERM: the worker finishes the message in hand, then stops
            mailer.join(timeout=30)


def _worker_process() -> None:
    asyncio.run(_run_worker())


async def _run_worker() -> None:
    from slotwise.notifications.worker import run
    from slotwise.observability import configure_logging

    settings = get_settings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


@app.command()
def worker(
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")
    ] = True,
) -> None:
    """Deliver queued email and reminders until stopped (SIGINT or SIGTERM).

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


@app.command()
def demo() -> None:
    """Fill the database with demo providers, services, hours, clients and appointments."""
    from datetime import UTC, datetime

    from slotwise.demo import populate

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    for line in asyncio.run(populate(settings, now=datetime.now(UTC))):
        typer.echo(line)


if __name__ == "__main__":
    app()

"""The command line: migrate, create-admin, and settings that refuse to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from slotwise.cli import app as cli
from slotwise.config import DEV_SECRET_FILE, Environment, Settings, get_settings
from slotwise.main import create_app
from tests.conftest import make_settings
from tests.factories import PASSWORD

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("SLOTWISE_DATABASE_URL", "SLOTWISE_SECRET_KEY", "SLOTWISE_ENV"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_create_admin_is_the_way_to_an_admin(workdir: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "create-admin",
            "--email",
            "Root@Example.com",
            "--full-name",
            "Root",
            "--password",
            PASSWORD,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (workdir / "slotwise.db").exists()
    again = runner.invoke(
        cli,
        [
            "create-admin",
            "--email",
            "root@example.com",
            "--full-name",
            "Root",
            "--password",
            PASSWORD,
        ],
    )
    assert again.exit_code == 1
    assert "already exists" in again.output
    weak = runner.invoke(
        cli,
        [
            "create-admin",
            "--email",
            "b@example.com",
            "--full-name",
            "B",
            "--password",
            "password123",
        ],
    )
    assert weak.exit_code == 1


async def test_created_admin_can_log_in_with_role_admin(workdir: Path) -> None:
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        [
            "create-admin",
            "--email",
            "root@example.com",
            "--full-name",
            "Root",
            "--password",
            PASSWORD,
        ],
    )
    assert result.exit_code == 0, result.output
    app = create_app(make_settings(f"sqlite+aiosqlite:///{workdir / 'slotwise.db'}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
        tokens = (
            await client.post(
                "/auth/login", data={"username": "root@example.com", "password": PASSWORD}
            )
        ).json()
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    await app.state.slotwise.db.dispose()
    assert me.json()["role"] == "admin"


def test_migrate_up_and_down(workdir: Path) -> None:
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    down = runner.invoke(cli, ["migrate", "base", "--down"])
    assert down.exit_code == 0, down.output


def test_development_generates_and_keeps_a_secret(workdir: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.warns(UserWarning, match="SLOTWISE_SECRET_KEY"):
        first = settings.signing_key()
    assert (workdir / DEV_SECRET_FILE).read_text() == first
    assert Settings(_env_file=None).signing_key() == first  # type: ignore[call-arg]


def test_production_refuses_to_start_without_a_secret(workdir: Path) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, env=Environment.PRODUCTION)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="32 characters"):
        Settings(_env_file=None, env=Environment.PRODUCTION, secret_key="short")  # type: ignore[call-arg]


def test_settings_read_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("SLOTWISE_ACCESS_TOKEN_MINUTES", "15")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.access_token_minutes == 15
    assert settings.default_timezone == "America/Guayaquil"
    monkeypatch.setenv("SLOTWISE_DEFAULT_TIMEZONE", "Not/AZone")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_create_admin_beside_a_running_server_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (a server, its mail worker) writes while create-admin hashes the
    password: create-admin still writes its admin (it once failed, "database is locked",
    its read-then-write transaction unable to take the write lock). SQLite only: the
    failure was SQLite's."""
    import sqlite3

    from slotwise import migrate
    from slotwise.auth.passwords import PasswordHasher
    from slotwise.users.admin import create_admin

    path = tmp_path / "slotwise.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate.upgrade, url)
    hash_password = PasswordHasher.hash
    others: list[str] = []

    async def hash_while_another_writes(self: PasswordHasher, password: str) -> str:
        other = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE users SET full_name = full_name")
            other.execute("COMMIT")
            others.append("wrote")
        except sqlite3.OperationalError:
            others.append("waited")  # create-admin holds the write lock: as it should
        finally:
            other.close()
        return await hash_password(self, password)

    monkeypatch.setattr(PasswordHasher, "hash", hash_while_another_writes)
    settings = make_settings(url)
    user_id = await create_admin(settings, email="a@example.com", full_name="A", password=PASSWORD)
    assert user_id is not None
    assert others == ["waited"]


async def test_demo_fills_a_world_you_can_sign_in_to(workdir: Path) -> None:
    first = await asyncio.to_thread(runner.invoke, cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "maria@demo.slotwise.dev" in first.output
    again = await asyncio.to_thread(runner.invoke, cli, ["demo"])  # idempotent
    assert again.exit_code == 0, again.output
    app = create_app(make_settings(f"sqlite+aiosqlite:///{workdir / 'slotwise.db'}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
        tokens = (
            await client.post(
                "/auth/login",
                data={
                    "username": "maria@demo.slotwise.dev",
                    "password": "slotwise-demo-passphrase",
                },
            )
        ).json()
        mine = await client.get(
            "/appointments/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        providers = await client.get("/providers")
    await app.state.slotwise.db.dispose()
    assert mine.json()["total"] == 2
    assert providers.json()["total"] == 3


async def test_demo_beside_a_taken_handle_works_twice(workdir: Path, database_url: str) -> None:
    """A database where someone else has ``ana-math`` (as after the API guide's own
    examples): the demo gives its Ana another handle, says which, and runs again."""
    app = create_app(make_settings(database_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
        someone = {"email": "ana@example.com", "password": PASSWORD, "full_name": "Ana Tutor"}
        registered = await client.post("/auth/register", json={**someone, "role": "tutor"})
        assert registered.status_code == 201
        tokens = (
            await client.post(
                "/auth/login", data={"username": someone["email"], "password": PASSWORD}
            )
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        taken = await client.post(
            "/providers/me", headers=headers, json={"public_handle": "ana-math"}
        )
        assert taken.status_code == 201
        for _ in range(2):
            ran = await asyncio.to_thread(
                runner.invoke, cli, ["demo"], env={"SLOTWISE_DATABASE_URL": database_url}
            )
            assert ran.exit_code == 0, ran.output
            assert ran.exception is None
            assert (
                "provider  ana@demo.slotwise.dev  (/providers/ana-math-demo, America/Guayaquil)"
                in ran.output
            )
            assert "Sign in: curl" in ran.output
        theirs = (await client.get("/providers/ana-math")).json()
        demo_ana = (await client.get("/providers/ana-math-demo")).json()
        listed = (await client.get("/providers")).json()
    await app.state.slotwise.aclose()
    assert theirs["full_name"] == "Ana Tutor"
    assert demo_ana["full_name"] == "Ana Torres"
    assert [service["name"] for service in demo_ana["services"]] == ["Intro call"]
    assert listed["total"] == 4


@pytest.mark.parametrize("weekday", [3, 4])  # Thursday and Friday once collided
async def test_demo_works_on_any_day(workdir: Path, weekday: int) -> None:
    from datetime import UTC, datetime, timedelta

    from slotwise import migrate
    from slotwise.demo import populate

    url = f"sqlite+aiosqlite:///{workdir / 'demo.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    monday = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    lines = await populate(make_settings(url), now=monday + timedelta(days=weekday))
    assert any("maria@demo.slotwise.dev" in line for line in lines)


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """An operator learns the settings from the README's table: a setting added without its
    row fails here."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `SLOTWISE_")]
    missing = [
        name
        for name in Settings.model_fields
        if not any(f"`SLOTWISE_{name.upper()}`" in row for row in rows)
    ]
    assert missing == []

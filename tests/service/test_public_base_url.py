"""SLOTWISE_PUBLIC_BASE_URL unset: links point at the host and port served, not :8000."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from slotwise.cli import app as cli
from slotwise.config import get_settings, served_base_url
from tests.factories import PASSWORD
from tests.servers import free_port
from tests.service.test_serve_signals import SLOTWISE, start, stop_and_check

pytestmark = pytest.mark.long


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8010"),
        ("0.0.0.0", "http://127.0.0.1:8010"),  # noqa: S104 - all interfaces: this machine's
        ("::", "http://[::1]:8010"),
        ("::1", "http://[::1]:8010"),
        ("api.example.com", "http://api.example.com:8010"),
    ],
)
def test_the_served_address_as_a_url(host: str, url: str) -> None:
    assert served_base_url(host, 8010) == url


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in ("SLOTWISE_DATABASE_URL", "SLOTWISE_SECRET_KEY", "SLOTWISE_PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


async def test_the_demo_signs_in_where_serve_will_listen(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, cli, ["demo", "--port", "8010"])
    assert result.exit_code == 0, result.output
    assert "curl -X POST http://127.0.0.1:8010/api/v1/auth/login " in result.output
    assert ":8000" not in result.output
    monkeypatch.setenv("SLOTWISE_PUBLIC_BASE_URL", "https://book.example.com")
    get_settings.cache_clear()
    again = await asyncio.to_thread(runner.invoke, cli, ["demo", "--port", "8010"])
    assert again.exit_code == 0, again.output
    assert "curl -X POST https://book.example.com/api/v1/auth/login " in again.output


def _mail_text(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


def test_serve_puts_its_own_port_into_links(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start([str(SLOTWISE), "serve", "--port", str(port)], tmp_path, port)
    try:
        account = {"email": "new@example.com", "password": PASSWORD, "full_name": "New"}
        assert httpx.post(f"{base}/api/v1/auth/register", json=account).status_code == 201
        tokens = httpx.post(
            f"{base}/api/v1/auth/login", data={"username": account["email"], "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        feed = httpx.post(f"{base}/api/v1/users/me/calendar-feed", headers=headers)
        assert feed.status_code == 201, feed.text
        assert feed.json()["url"].startswith(f"{base}/api/v1/")
        forgot = httpx.post(
            f"{base}/api/v1/auth/forgot-password", json={"email": "new@example.com"}
        )
        assert forgot.status_code == 202, forgot.text
        mail_dir = tmp_path / "mail"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(mail_dir.glob("*.eml")):
            time.sleep(0.2)
        (mail,) = mail_dir.glob("*.eml")
        text = _mail_text(mail)
        assert f"{base}/" in text
        assert ":8000" not in text
    finally:
        stop_and_check(process, process.pid, signal.SIGTERM)

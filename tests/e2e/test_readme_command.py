"""The README's start command, run as a new user would: a real process on a free port.

`slotwise serve` in a fresh directory, with no .env and no database server, must answer,
and must run the mail worker beside it, so that a booking's email appears on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port, wait_until_up

PASSWORD = "a-long-and-unusual-passphrase"


def test_serve_answers_and_its_worker_delivers_mail(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTWISE_")}
    env["SLOTWISE_WORKER_POLL_SECONDS"] = "0.5"
    slotwise = Path(sys.executable).parent / "slotwise"
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        [str(slotwise), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, name="slotwise serve")
        assert (tmp_path / "slotwise.db").exists()  # the embedded default, migrated
        registered = httpx.post(
            f"{base}/api/v1/auth/register",
            json={"email": "new@example.com", "password": PASSWORD, "full_name": "New"},
        )
        assert registered.status_code == 201
        httpx.post(f"{base}/api/v1/auth/forgot-password", json={"email": "new@example.com"})
        mail_dir = tmp_path / "var" / "mail"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(mail_dir.glob("*.eml")):
            time.sleep(0.3)
        mails = list(mail_dir.glob("*.eml"))
        assert len(mails) == 1, "the worker beside serve delivered nothing"
        assert "new@example.com" in mails[0].read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)

"""Delivery: SMTP through aiosmtplib, or, with no SMTP host set, .eml files and the log."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
import structlog

from slotwise.config import Settings, SmtpSecurity

log = structlog.get_logger(__name__)


class Sender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_security is SmtpSecurity.TLS,
            start_tls=s.smtp_security is SmtpSecurity.STARTTLS,
            timeout=s.smtp_timeout_seconds,
        )


class FolderSender:
    """Development: every message becomes ``<mail_dir>/<message id>.eml``; a retry overwrites
    the same file, so a message is never there twice."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        name = re.sub(r"[^A-Za-z0-9@._-]", "", str(message["Message-ID"])) + ".eml"
        path = self.directory / name
        await asyncio.to_thread(self._write, path, message.as_bytes())
        log.info(
            "mail_written",
            path=str(path),
            to=str(message["To"]),
            subject=str(message["Subject"]),
            text=_plain_text(message),
        )

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def sender_for(settings: Settings) -> Sender:
    if settings.smtp_host:
        return SmtpSender(settings)
    return FolderSender(settings.mail_dir)


def _plain_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if isinstance(body, EmailMessage) else ""

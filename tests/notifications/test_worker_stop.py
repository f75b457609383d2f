"""A worker told to stop (SIGTERM, SIGINT) finishes the batch in hand, then claims no more."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from fastapi import FastAPI

from slotwise.booking.publish import reminder_still_due
from slotwise.config import Settings
from slotwise.notifications.sender import SmtpSender
from slotwise.notifications.worker import Worker
from tests.factories import BOOKING_NOW
from tests.notifications.test_delivery import _queue, _statuses


class StoppedWhileSending(SmtpSender):
    """The real SMTP sender; the stop arrives while the first message of a batch goes."""

    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        super().__init__(settings)
        self.stop = stop

    async def send(self, message: EmailMessage) -> None:
        self.stop.set()
        await super().send(message)


async def test_a_stopped_worker_finishes_its_batch_and_takes_no_more(
    app: FastAPI, settings: Settings
) -> None:
    await _queue(app, 5)
    stop = asyncio.Event()
    worker = Worker(
        db=app.state.slotwise.db,
        settings=settings.model_copy(update={"worker_batch_size": 3}),
        sender=StoppedWhileSending(settings, stop),
        reminder_still_due=reminder_still_due,
    )
    await asyncio.wait_for(worker.run_forever(stop, clock=lambda: BOOKING_NOW), timeout=30)
    assert await _statuses(app) == {"sent": 3, "pending": 2}

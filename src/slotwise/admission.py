"""Admission: how many requests a worker works on at once, and who goes next.

A worker runs whatever is ready in the order it became ready. Under a burst (a popular
provider opening a day: hundreds of clients at once) each request that arrives is started at
once, so its routing, validation and dependencies run between the steps of the requests
already under way: those that came first wait for the work of those that came after them,
and a burst's last answers come long after the average one. Admitting at most ``limit``
requests at once, the others waiting their turn in the order they came, answers them in
that order: the same work, a shorter tail (docs/benchmarks.md, "Admission").

A request holds its place from its admission until its response starts, so a stream (the
live availability feed) holds none while it streams. Its body is read before it takes a
place, so a client that sends slowly holds none either (one that leaves meanwhile, or whose
body is refused as too large, goes on at once to hear so); one whose client leaves while it
waits is taken out of line and not worked on. And a request that has held its
place for ``PATIENCE_SECONDS`` (one waiting on a slow calendar feed, or on the database)
stops counting: requests held up elsewhere never keep the worker from the others.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATIENCE_SECONDS = 1.0
CLIENT_LEFT = 499  # the status logged for a request whose client left while it waited
_LEFT = "http.disconnect"


class Ticket:
    """A request's place in line, then at work."""

    __slots__ = ()


class Turns:
    """A worker's places: ``limit`` requests at work at once (0: any number), the others
    waiting in line. One per app, shared by its middleware and its metrics."""

    def __init__(self, limit: int, *, patience: float | None = None) -> None:
        self.limit = limit
        self.patience = PATIENCE_SECONDS if patience is None else patience
        self._at_work: dict[Ticket, float] = {}  # in the order admitted: when
        self._line: deque[tuple[Ticket, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def at_work(self) -> int:
        """Requests counted at work (not those that outstayed their patience)."""
        return len(self._at_work)

    @property
    def waiting(self) -> int:
        return sum(1 for _ticket, turn in self._line if not turn.done())

    def take_now(self) -> Ticket | None:
        """A place if one is free and nobody waits."""
        if len(self._at_work) < self.limit and not self._line:
            ticket = Ticket()
            self._at_work[ticket] = asyncio.get_running_loop().time()
            return ticket
        return None

    async def take(self) -> Ticket:
        """A place, at once if one is free and nobody waits; else once those before have
        theirs and a place frees (one leaves, or outstays its patience)."""
        if (now := self.take_now()) is not None:
            return now
        ticket = Ticket()
        turn = asyncio.get_running_loop().create_future()
        self._line.append((ticket, turn))
        self._watch()
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():  # given a place as it was cancelled
                self.leave(ticket)
            raise
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """A place given up: to the first still in line, or freed."""
        if self._at_work.pop(ticket, None) is not None:
            self._admit()

    def _admit(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._line and len(self._at_work) < self.limit:
            ticket, turn = self._line.popleft()
            if not turn.done():  # not cancelled while it waited
                self._at_work[ticket] = now
                turn.set_result(None)

    def _watch(self) -> None:
        """While some wait: a timer for when the longest at work outstays its patience."""
        if self._timer is None and self._at_work:
            since = next(iter(self._at_work.values()))
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(since + self.patience, self._outstayed)

    def _outstayed(self) -> None:
        self._timer = None
        deadline = asyncio.get_running_loop().time() - self.patience
        while self._at_work and next(iter(self._at_work.values())) <= deadline:
            del self._at_work[next(iter(self._at_work))]
        self._admit()
        if any(not turn.done() for _ticket, turn in self._line):
            self._watch()


class AdmissionMiddleware:
    """Pure ASGI middleware: every HTTP request takes a place (``Turns``) before the app
    sees it, and gives it up when its response starts, or ends without one."""

    def __init__(self, app: ASGIApp, *, turns: Turns) -> None:
        self.app = app
        self.turns = turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.turns.limit == 0:
            await self.app(scope, receive, send)
            return
        body = _Body(receive)
        await body.read()
        if not body.whole:  # the client left, or its body is refused: answered without waiting
            await self.app(scope, body.replay, send)
            return
        ticket = self.turns.take_now() or await self._wait(body)
        if ticket is None:  # the client left while it waited: its request is not worked on
            await send({"type": "http.response.start", "status": CLIENT_LEFT, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.turns.leave(ticket)
            await send(message)

        try:
            await self.app(scope, body.replay, sending)
        finally:
            self.turns.leave(ticket)

    async def _wait(self, body: _Body) -> Ticket | None:
        """A place when its turn comes, or None if the client leaves first (with the body
        read, the client's next message is its leaving)."""
        taking = asyncio.ensure_future(self.turns.take())
        ticket: Ticket | None = None
        try:
            while ticket is None:
                leaving = asyncio.ensure_future(body.source())
                try:
                    await asyncio.wait((taking, leaving), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    leaving.cancel()
                if leaving.done() and not leaving.cancelled():
                    if leaving.exception() is None and leaving.result()["type"] == _LEFT:
                        return None
                    body.keep(leaving)  # not its leaving: the app reads it in turn
                if taking.done():
                    ticket = taking.result()
            return ticket
        finally:
            if ticket is None:  # it left, or was cancelled: out of line, or its place passed on
                taking.cancel()
                if taking.done() and not taking.cancelled():
                    self.turns.leave(taking.result())


class _Body:
    """A request's body, read before its turn, and a ``receive`` (``replay``) that gives it
    again, then goes on to the client's. An error while reading (the body guard's 413) is
    raised where the app reads, as it would have been."""

    def __init__(self, source: Receive) -> None:
        self.source = source
        self.early: deque[Message] = deque()
        self.failure: BaseException | None = None

    async def read(self) -> None:
        try:
            while True:
                message = await self.source()
                self.early.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
        except Exception as exc:
            self.failure = exc

    @property
    def whole(self) -> bool:
        """Read to its end (not cut short by the client leaving, or by the body guard)."""
        return self.failure is None and self.early[-1]["type"] == "http.request"

    def keep(self, read: asyncio.Future[Message]) -> None:
        """A message (or error) read while the request waited, for the app in turn."""
        if read.exception() is not None:
            self.failure = read.exception()
        else:
            self.early.append(read.result())

    async def replay(self) -> Message:
        if self.early:
            return self.early.popleft()
        if self.failure is not None:
            raised, self.failure = self.failure, None
            raise raised
        return await self.source()

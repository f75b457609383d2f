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
body is refused as too large, goes on at once to hear so). And a request that has held its
place for ``PATIENCE_SECONDS`` (one waiting on a slow calendar feed, or on the database)
stops counting: requests held up elsewhere never keep the worker from the others.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATIENCE_SECONDS = 1.0


class Ticket:
    """A request's place in line, then at work."""

    __slots__ = ()


class Turns:
    """A worker's places: ``limit`` requests at work at once (0: any number), the others
    waiting in line. One per app, shared by its middleware and its metrics."""

    def __init__(self, limit: int, *, patience: float = PATIENCE_SECONDS) -> None:
        self.limit = limit
        self.patience = patience
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

    async def take(self) -> Ticket:
        """A place, at once if one is free and nobody waits; else once those before have
        theirs and a place frees (one leaves, or outstays its patience)."""
        ticket = Ticket()
        loop = asyncio.get_running_loop()
        if len(self._at_work) < self.limit and not self._line:
            self._at_work[ticket] = loop.time()
            return ticket
        turn = loop.create_future()
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
        receive, whole = await _read_ahead(receive)
        if not whole:  # the client left, or its body is refused: answered without waiting
            await self.app(scope, receive, send)
            return
        ticket = await self.turns.take()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.turns.leave(ticket)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.turns.leave(ticket)


async def _read_ahead(receive: Receive) -> tuple[Receive, bool]:
    """The request's body read now, and a ``receive`` that gives it again, then goes on to
    the client's; and whether the body came whole (not when the client left, or the body
    guard refused it: its 413 is raised where the app reads, as it would have been)."""
    early: deque[Message] = deque()
    failure: Exception | None = None
    try:
        while True:
            message = await receive()
            early.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
    except Exception as exc:
        failure = exc
    whole = failure is None and early[-1]["type"] == "http.request"

    async def replay() -> Message:
        nonlocal failure
        if early:
            return early.popleft()
        if failure is not None:
            raised, failure = failure, None
            raise raised
        return await receive()

    return replay, whole

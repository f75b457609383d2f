"""The one way Slotwise calls out over HTTP (webhooks, connected calendars):
``OutboundGuard.post`` and ``OutboundGuard.send``.

A URL given by a user must not reach what only the server can reach (its loopback, the
private network, a cloud's metadata service), so every call

- takes ``https`` only, unless the operator allows ``http`` (development, tests);
- resolves the host once, refuses it if any address it resolves to is not a public one
  (loopback, private, link-local, multicast, reserved, unspecified, shared, metadata) unless
  the operator's allowlist names the host or a network holding the address, and connects to
  that very address (the URL's host is kept for the Host header and TLS's SNI and
  certificate check), so a second lookup cannot answer differently (DNS rebinding);
- follows no redirect, uses no proxy from the environment, has a connect and a total
  timeout, and reads at most ``max_response_bytes`` of the answer.

A refusal raises ``Refused``; a failure of the call itself, ``httpx.HTTPError`` or
``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Self

import httpx

from slotwise.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to. The guard's seam: tests give their own.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Cloud metadata services. Each is also non-public (link-local, unique-local or shared
# space) and so refused anyway; named so that the reason reads right and a test keeps them.
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)


class Refused(Exception):
    """The call was not made: the URL or its destination is not allowed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(address: IPAddress) -> str | None:
    """Why a call may not go to ``address`` (None: it may): anything but a public unicast
    address. An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not a public address", not address.is_global),
    )
    return next((name for name, holds in checks if holds), None)


@dataclass(frozen=True, slots=True)
class Allowlist:
    """What the operator lets calls reach although it is not public: hosts by name, and
    networks (a single address is a /32 or /128)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """``entries``: CIDRs, addresses or host names (ValueError for an empty one)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                raise ValueError("an empty allowlist entry")
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host in self.hosts or any(address in network for network in self.networks)


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """What came back: the status, and at most the guard's cap of the body."""

    status_code: int
    body: bytes
    truncated: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back from ``send``: the status, the headers and the whole body (``send``
    refuses a larger one than the cap, ``TooLarge``)."""

    status_code: int
    headers: httpx.Headers
    body: bytes


class TooLarge(Exception):
    """The answer is larger than the cap: the rest was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class OutboundGuard:
    allowlist: Allowlist = Allowlist()
    allow_http: bool = False
    connect_timeout_seconds: float = 5.0
    total_timeout_seconds: float = 15.0
    max_response_bytes: int = 4096
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver) -> Self:
        return cls(
            allowlist=Allowlist.parse(settings.outbound_allow),
            allow_http=settings.outbound_allow_http,
            connect_timeout_seconds=settings.outbound_connect_timeout_seconds,
            total_timeout_seconds=settings.outbound_timeout_seconds,
            max_response_bytes=settings.outbound_response_max_bytes,
            resolver=resolver,
        )

    def check_url(self, url: str) -> httpx.URL:
        """What can be judged without resolving: the URL's form, its scheme, and its host
        when that is an address (a subscription is checked so when made, and again, fully,
        on every call). ``Refused`` if it fails."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise Refused(f"not a valid URL: {exc}") from exc
        schemes = {"https", "http"} if self.allow_http else {"https"}
        if parsed.scheme not in schemes:
            raise Refused(f"the scheme must be {' or '.join(sorted(schemes))}")
        if not parsed.host:
            raise Refused("the URL has no host")
        if parsed.userinfo:
            raise Refused("the URL must not carry credentials")
        literal = _address(parsed.host)
        if literal is not None:
            self._check(parsed.host, [literal])
        return parsed

    async def destination(self, url: str) -> tuple[httpx.URL, IPAddress]:
        """The checked URL and the address to connect to (``Refused`` if none may be)."""
        parsed = self.check_url(url)
        host = parsed.host.lower().rstrip(".")
        literal = _address(host)
        if literal is not None:
            return parsed, literal
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            found = [ipaddress.ip_address(a) for a in await self.resolver(host, port)]
        except (OSError, ValueError) as exc:
            raise Refused(f"{host} does not resolve") from exc
        if not found:
            raise Refused(f"{host} does not resolve")
        self._check(host, found)
        return parsed, found[0]

    def _check(self, host: str, found: list[IPAddress]) -> None:
        """Every address: a name must not mix public and non-public answers."""
        host = host.lower().rstrip(".")
        for address in found:
            why = None if self.allowlist.allows(host, address) else refusal(address)
            if why is not None:
                raise Refused(f"{host} resolves to {address}: {why}")

    async def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str]
    ) -> OutboundResponse:
        """POST ``content`` to ``url``: the checked address, no redirect followed."""
        async with self._sent("POST", url, content=content, headers=headers) as response:
            body, truncated = await _first_bytes(response, self.max_response_bytes)
        return OutboundResponse(response.status_code, body, truncated)

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Answer:
        """Any request (a calendar's GET, CalDAV's PROPFIND and REPORT...) to ``url``, by
        the same rules as ``post``; the whole answer, or ``TooLarge`` past the cap. A
        redirect is an answer like any other (3xx): it is not followed."""
        async with self._sent(method, url, content=content, headers=headers, auth=auth) as sent:
            body, truncated = await _first_bytes(sent, self.max_response_bytes)
        if truncated:
            raise TooLarge(self.max_response_bytes)
        return Answer(sent.status_code, sent.headers, body)

    @asynccontextmanager
    async def _sent(
        self,
        method: str,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str] | None,
        auth: httpx.Auth | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """The answer's head, from the checked address; its body is the caller's to read
        (within the total timeout)."""
        parsed, address = await self.destination(url)
        pinned = parsed.copy_with(host=str(address))
        host_header = parsed.netloc.decode("ascii")
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        timeout = httpx.Timeout(self.total_timeout_seconds, connect=self.connect_timeout_seconds)
        async with (
            asyncio.timeout(self.total_timeout_seconds),
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        ):
            request = client.build_request(
                method,
                pinned,
                content=content,
                headers={**(headers or {}), "Host": host_header},
                extensions=extensions,
            )
            response = await client.send(request, stream=True, auth=auth)
            try:
                yield response
            finally:
                await response.aclose()


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _first_bytes(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False

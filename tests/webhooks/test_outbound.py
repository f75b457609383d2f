"""The outbound guard against a real HTTP receiver on loopback: what it refuses, and that
the call it makes goes to the very address it checked."""

from __future__ import annotations

import pytest

from slotwise.outbound import Allowlist, OutboundGuard, Refused
from tests.receiver import Receiver

LOOPBACK = Allowlist.parse(["127.0.0.1"])


def _resolving(answers: dict[str, list[str]]) -> OutboundGuard:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return OutboundGuard(allowlist=LOOPBACK, allow_http=True, resolver=resolve)


async def test_an_allowlisted_receiver_gets_the_call(receiver: Receiver) -> None:
    guard = OutboundGuard(allowlist=LOOPBACK, allow_http=True)
    answer = await guard.post(receiver.url, content=b'{"a":1}', headers={"X-Test": "yes"})
    assert answer.status_code == 204
    (request,) = receiver.received
    assert request.body == b'{"a":1}'
    assert request.headers["x-test"] == "yes"


async def test_loopback_is_refused_unless_allowlisted(receiver: Receiver) -> None:
    guard = OutboundGuard(allow_http=True)
    with pytest.raises(Refused, match="loopback"):
        await guard.post(receiver.url, content=b"{}", headers={})
    assert receiver.received == []


async def test_a_name_resolving_to_loopback_is_refused(receiver: Receiver) -> None:
    """``localhost`` resolves (by the system's resolver) to a loopback address."""
    guard = OutboundGuard(allow_http=True)
    with pytest.raises(Refused, match=r"localhost resolves to .*loopback"):
        await guard.post(f"http://localhost:{receiver.port}/hook", content=b"{}", headers={})
    assert receiver.received == []


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    guard = _resolving({"hooks.example.com": ["10.0.0.5"]})
    with pytest.raises(Refused, match="private"):
        await guard.post("http://hooks.example.com/hook", content=b"{}", headers={})


async def test_one_private_answer_among_public_ones_is_refused() -> None:
    guard = _resolving({"hooks.example.com": ["93.184.215.14", "169.254.169.254"]})
    with pytest.raises(Refused, match="metadata"):
        await guard.post("http://hooks.example.com/hook", content=b"{}", headers={})


async def test_the_call_goes_to_the_checked_address(receiver: Receiver) -> None:
    """The name resolves (by the guard's resolver) only once: the call connects to the
    address checked, carrying the name in its Host header. ``.invalid`` names never resolve
    in DNS, so a second lookup would fail."""
    guard = _resolving({"receiver.invalid": ["127.0.0.1"]})
    url = f"http://receiver.invalid:{receiver.port}/hook"
    answer = await guard.post(url, content=b"{}", headers={})
    assert answer.status_code == 204
    assert receiver.received[0].headers["host"] == f"receiver.invalid:{receiver.port}"


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.status, receiver.location = 307, f"http://127.0.0.1:{receiver.port}/elsewhere"
    guard = OutboundGuard(allowlist=LOOPBACK, allow_http=True)
    answer = await guard.post(receiver.url, content=b"{}", headers={})
    assert answer.status_code == 307
    assert [request.path for request in receiver.received] == ["/hook"]


async def test_only_the_first_bytes_of_the_answer_are_read(receiver: Receiver) -> None:
    receiver.status, receiver.body = 200, b"x" * 100_000
    guard = OutboundGuard(allowlist=LOOPBACK, allow_http=True, max_response_bytes=64)
    answer = await guard.post(receiver.url, content=b"{}", headers={})
    assert (answer.body, answer.truncated) == (b"x" * 64, True)


async def test_the_total_timeout_ends_a_slow_call(receiver: Receiver) -> None:
    receiver.delay_seconds = 2
    guard = OutboundGuard(allowlist=LOOPBACK, allow_http=True, total_timeout_seconds=0.3)
    with pytest.raises(TimeoutError):
        await guard.post(receiver.url, content=b"{}", headers={})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "scheme must be https"),
        ("ftp://127.0.0.1/hook", "scheme must be https"),
        ("https://user:pw@127.0.0.1/hook", "credentials"),
        ("https:///hook", "no host"),
    ],
)
async def test_bad_urls_are_refused(url: str, reason: str) -> None:
    guard = OutboundGuard(allowlist=LOOPBACK)
    with pytest.raises(Refused, match=reason):
        await guard.post(url, content=b"{}", headers={})


def test_plain_http_is_refused_in_production() -> None:
    from pydantic import ValidationError

    from slotwise.config import Environment, Settings

    with pytest.raises(ValidationError, match="OUTBOUND_ALLOW_HTTP"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            env=Environment.PRODUCTION,
            secret_key="k" * 40,
            outbound_allow_http=True,
        )

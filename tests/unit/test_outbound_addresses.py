"""The outbound guard's address rules: only public unicast addresses, unless allowlisted."""

from __future__ import annotations

import ipaddress

import pytest

from slotwise.outbound import METADATA_ADDRESSES, Allowlist, refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - judged, not bound
        ("::", "unspecified"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT, shared space
        ("169.254.169.254", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 written as IPv6 is judged as IPv4
        ("::ffff:169.254.169.254", "cloud metadata address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_every_metadata_address_is_refused() -> None:
    assert all(refusal(address) for address in METADATA_ADDRESSES)


def test_the_allowlist_names_hosts_and_networks() -> None:
    allowlist = Allowlist.parse(["127.0.0.1", "10.0.0.0/8", "Hooks.Internal."])
    assert allowlist.allows("x", ipaddress.ip_address("127.0.0.1"))
    assert allowlist.allows("x", ipaddress.ip_address("10.200.0.1"))
    assert allowlist.allows("hooks.internal", ipaddress.ip_address("192.168.0.9"))
    assert not allowlist.allows("x", ipaddress.ip_address("127.0.0.2"))
    assert not allowlist.allows("x", ipaddress.ip_address("192.168.0.9"))


def test_an_empty_allowlist_entry_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        Allowlist.parse([" "])

"""The SSRF guard: which addresses a webhook may reach (pure), and the resolve-then-connect check in
``surge.server.net`` driven by a fake resolver (no network)."""

from __future__ import annotations

import asyncio
import doctest
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

import surge.core.ssrf
from surge.core.ssrf import Target, literal_refusal, parse_target, refusal
from surge.errors import InvalidError
from surge.server.net import RefusedURL, check_url


def test_doctests() -> None:
    assert doctest.testmod(surge.core.ssrf).failed == 0


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.0.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.170.2", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("192.0.0.192", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("100.64.0.1", "a shared (CGNAT) address"),
    ("100.127.255.254", "a shared (CGNAT) address"),
    ("240.0.0.1", "a private address"),             # reserved, and Python counts it as private
    ("192.0.2.1", "a private address"),             # TEST-NET-1 (documentation)
    ("198.18.0.1", "a private address"),            # benchmarking
    ("2001:db8::1", "a private address"),           # documentation
    ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped IPv6 of 127.0.0.1)"),
    ("::ffff:10.0.0.1", "a private address (IPv4-mapped IPv6 of 10.0.0.1)"),
    ("::ffff:169.254.169.254", "a cloud metadata address (IPv4-mapped IPv6 of 169.254.169.254)"),
    ("2002:7f00:1::", "a loopback address (6to4 of 127.0.0.1)"),
    ("2002:a9fe:a9fe::", "a cloud metadata address (6to4 of 169.254.169.254)"),
    ("64:ff9b::a00:1", "a private address (NAT64 of 10.0.0.1)"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address (Teredo of 127.0.0.1)"),
])
def test_refused_addresses(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111",
                                     "::ffff:1.1.1.1", "2002:0101:0101::", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_address_is_classified_like_its_mapped_twin(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    inner, outer = refusal(v4), refusal(mapped)
    assert (inner is None) == (outer is None)
    # anything the guard lets through is globally routable
    if inner is None:
        assert v4.is_global


@pytest.mark.parametrize(("url", "target"), [
    ("http://example.com", Target("http", "example.com", 80, "/")),
    ("https://example.com/in?a=1&b=2", Target("https", "example.com", 443, "/in?a=1&b=2")),
    ("HTTPS://Example.com:8443/x", Target("https", "example.com", 8443, "/x")),
    ("http://[2606:4700::1]:81/h", Target("http", "2606:4700::1", 81, "/h")),
    ("http://example.com./h", Target("http", "example.com", 80, "/h")),
    ("http://user:pw@example.com/h", Target("http", "example.com", 80, "/h")),
])
def test_parse_target(url: str, target: Target) -> None:
    assert parse_target(url) == target


@pytest.mark.parametrize(("url", "needle"), [
    ("", "empty"),
    ("ftp://example.com/", "scheme 'ftp' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("gopher://x", "scheme 'gopher'"),
    ("http:///path", "has no host"),
    ("http://example.com:99999/", "invalid port"),
    ("http://exa mple.com/", "whitespace or control characters"),
    ("http://example.com/\x00", "whitespace or control characters"),
    ("http://example.com/" + "a" * 2100, "over the limit of 2048"),
])
def test_parse_target_refuses(url: str, needle: str) -> None:
    with pytest.raises(InvalidError, match=needle):
        parse_target(url)


def test_parse_target_refuses_non_strings() -> None:
    with pytest.raises(InvalidError, match="empty"):
        parse_target(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "why"), [
    ("localhost", "a name of this machine (localhost)"),
    ("LOCALHOST", "a name of this machine (localhost)"),
    ("localhost.localdomain", "a name of this machine (localhost)"),
    ("api.localhost", "a name of this machine (localhost)"),
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("example.com", None),
    ("8.8.8.8", None),
])
def test_literal_refusal(host: str, why: str | None) -> None:
    assert literal_refusal(host) == why


# -- resolve, check every answer, connect to the checked one -----------------------------------------

def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]
    return resolve


DNS = resolver({"public.example": ["93.184.215.14", "93.184.215.14"],
                "rebind.example": ["127.0.0.1"],
                "mixed.example": ["93.184.215.14", "10.0.0.1"],
                "v6.example": ["2606:4700::1%eth0"],
                "empty.example": []})


def check(url: str, allow_private: bool = False):  # type: ignore[no-untyped-def]
    return asyncio.run(check_url(url, allow_private=allow_private, resolver=DNS))


def test_a_public_name_is_pinned_to_its_checked_address() -> None:
    target, address = check("https://public.example/hook")
    assert target.host == "public.example" and address == ipaddress.ip_address("93.184.215.14")
    assert check("http://v6.example/")[1] == ipaddress.ip_address("2606:4700::1")     # zone id dropped


@pytest.mark.parametrize(("url", "needle"), [
    ("http://rebind.example/", "resolves to 127.0.0.1, a loopback address"),
    ("http://mixed.example/", "resolves to 10.0.0.1, a private address"),     # one bad answer is enough
    ("http://unknown.example/", "does not resolve"),
    ("http://empty.example/", "resolves to no address"),
    ("http://localhost/", "points at a name of this machine"),
    ("http://169.254.169.254/latest/meta-data", "points at a cloud metadata address"),
    ("ftp://public.example/", "scheme 'ftp' is not allowed"),
])
def test_refusals(url: str, needle: str) -> None:
    with pytest.raises(RefusedURL, match=needle):
        check(url)


def test_allow_private_lifts_the_address_check_only() -> None:
    assert str(check("http://rebind.example/", allow_private=True)[1]) == "127.0.0.1"
    assert str(check("http://mixed.example/", allow_private=True)[1]) == "93.184.215.14"
    with pytest.raises(RefusedURL, match="does not resolve"):
        check("http://unknown.example/", allow_private=True)
    with pytest.raises(RefusedURL, match="scheme"):
        check("ftp://public.example/", allow_private=True)


def test_a_slow_resolver_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    import surge.server.net as net

    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    monkeypatch.setattr(net, "RESOLVE_TIMEOUT", 0.01)
    with pytest.raises(RefusedURL, match="does not resolve"):
        asyncio.run(check_url("http://slow.example/", allow_private=False, resolver=hang))

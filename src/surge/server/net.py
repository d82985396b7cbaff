"""Outbound HTTP to user-chosen URLs (job webhooks), behind the SSRF guard of ``surge.core.ssrf``.

The host is resolved once; every address it resolves to must be allowed (a name with one public
and one private address is refused, so an attacker cannot win by ordering the answers); then the
request goes to the *checked address*, never to the name again, so a second lookup cannot answer
differently (DNS rebinding). The name still travels in the ``Host`` header and, for https, as the
TLS SNI name that the certificate is verified against. Redirects are not followed, proxies from
the environment are not used, and at most ``MAX_RESPONSE_BYTES`` of an answer are read.

``allow_private`` (``surge server --allow-private-webhooks``) lifts the address check, for
receivers on the operator's own network and for tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from surge.core.ssrf import IPAddress, Target, literal_refusal, parse_target, refusal
from surge.errors import InvalidError

MAX_RESPONSE_BYTES = 64 << 10
RESOLVE_TIMEOUT = 5.0

Resolver = Callable[[str, int], Awaitable[list[str]]]


class RefusedURL(InvalidError):
    """A webhook URL the control plane will not call (shape, resolution or address)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: bytes              # at most MAX_RESPONSE_BYTES


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def check_url(url: str, *, allow_private: bool,
                    resolver: Resolver = system_resolver) -> tuple[Target, IPAddress]:
    """The parsed URL and the address to connect to; ``RefusedURL`` when it must not be called."""
    try:
        target = parse_target(url)
    except InvalidError as exc:
        raise RefusedURL(exc.message) from None
    if not allow_private:
        why = literal_refusal(target.host)
        if why is not None:
            raise RefusedURL(f"webhook URL {url!r} points at {why}; webhooks may only reach public "
                             "addresses (start the server with --allow-private-webhooks to allow it)")
    try:
        found = await asyncio.wait_for(resolver(target.host, target.port), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise RefusedURL(f"webhook host {target.host!r} does not resolve ({exc or 'timed out'})") from None
    addresses: list[IPAddress] = []
    for a in found:
        address = ipaddress.ip_address(a.split("%", 1)[0])    # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise RefusedURL(f"webhook host {target.host!r} resolves to no address")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise RefusedURL(f"webhook host {target.host!r} resolves to {address}, {why}; webhooks may "
                                 "only reach public addresses (start the server with "
                                 "--allow-private-webhooks to allow it)")
    return target, addresses[0]


async def post_checked(url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool,
                       timeout: float, resolver: Resolver = system_resolver) -> Answer:
    """POST ``body`` to ``url`` through the guard. Raises ``RefusedURL`` (not called) or
    ``httpx.HTTPError`` (no answer)."""
    target, address = await check_url(url, allow_private=allow_private, resolver=resolver)
    literal = f"[{address}]" if address.version == 6 else str(address)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:      # an IPv6 literal keeps its brackets in Host
        host_header = f"[{target.host}]" + ("" if target.port == default_port else f":{target.port}")
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
        request = client.build_request("POST", f"{target.scheme}://{literal}:{target.port}{target.path}",
                                       content=body, headers={**headers, "Host": host_header},
                                       extensions=extensions)
        response = await client.send(request, stream=True)
        try:
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= MAX_RESPONSE_BYTES:
                    break
            return Answer(response.status_code, bytes(data[:MAX_RESPONSE_BYTES]))
        finally:
            await response.aclose()

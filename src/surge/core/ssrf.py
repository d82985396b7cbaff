"""Which webhook targets the control plane may call (server-side request forgery guard).

A webhook URL is chosen by whoever submits the job, and the control plane POSTs to it from inside
the operator's network, so a URL must not reach loopback, private, link-local, CGNAT, multicast,
reserved or cloud-metadata addresses. The decision is made on *resolved* addresses (a name can
point anywhere, and ``2130706433`` or ``0x7f.1`` are 127.0.0.1 to the resolver); ``server/net.py``
resolves, asks ``refusal`` about every address, and connects to the checked one.

>>> refusal(ipaddress.ip_address("93.184.215.14")) is None
True
>>> refusal(ipaddress.ip_address("169.254.169.254"))
'a cloud metadata address'
>>> refusal(ipaddress.ip_address("::ffff:10.0.0.1"))
'a private address (IPv4-mapped IPv6 of 10.0.0.1)'
>>> parse_target("https://hooks.example.com/in?x=1")
Target(scheme='https', host='hooks.example.com', port=443, path='/in?x=1')
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from surge.errors import InvalidError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# Instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, AWS ECS task, Alibaba, Oracle).
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str          # a name or an address literal (without IPv6 brackets)
    port: int
    path: str          # path and query, as sent in the request line


def refusal(address: IPAddress) -> str | None:
    """Why the control plane must not connect to ``address``, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            kind, v4 = embedded
            inner = refusal(v4)
            return None if inner is None else f"{inner} ({kind} of {v4})"
    if address in METADATA:
        return "a cloud metadata address"
    for test, what in ((address.is_loopback, "a loopback address"),
                       (address.is_link_local, "a link-local address"),
                       (address.is_multicast, "a multicast address"),
                       (address.is_unspecified, "the unspecified address"),
                       (address.is_private, "a private address"),
                       (address in _CGNAT, "a shared (CGNAT) address"),
                       (address.is_reserved, "a reserved address"),
                       # whatever newer address tables add: only globally routable addresses pass
                       (not address.is_global, "not a globally routable address")):
        if test:
            return what
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """IPv6 forms that carry an IPv4 address a router or the kernel would reach instead."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped IPv6", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        return "Teredo", address.teredo[1]
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_target(url: str) -> Target:
    """Check a webhook URL's shape (http or https, a host, a valid port) and split it."""
    if not isinstance(url, str) or not url:
        raise InvalidError("webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidError(f"webhook URL is {len(url)} characters, over the limit of {MAX_URL_LENGTH}")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise InvalidError("webhook URL contains whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidError(f"webhook URL scheme {parts.scheme!r} is not allowed: use http or https")
    try:
        port = parts.port
    except ValueError:
        raise InvalidError(f"webhook URL {url!r} has an invalid port") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidError(f"webhook URL {url!r} has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def literal_refusal(host: str) -> str | None:
    """Refusals knowable without DNS: an address literal, or a name reserved for this machine."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        lowered = host.lower()
        if lowered in _LOCAL_NAMES or lowered.endswith(".localhost"):
            return "a name of this machine (localhost)"
        return None
    return refusal(address)

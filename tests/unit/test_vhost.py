"""Virtual hosts of web endpoints (``surge.core.vhost``) and the WebSocket tunnel's head parser."""

from __future__ import annotations

import pytest

from surge.core.vhost import check_web_host, normalize_host, split_vhost
from surge.server.tunnel import parse_head


@pytest.mark.parametrize(("configured", "normal"), [
    (None, None), ("", None), ("  ", None), (".", None), ("surge.localhost", "surge.localhost"),
    ("Surge.LocalHost.", "surge.localhost"), (".run.example.com", "run.example.com"),
])
def test_normalize_host(configured: str | None, normal: str | None) -> None:
    assert normalize_host(configured) == normal


@pytest.mark.parametrize(("given", "host"), [
    ("surge.localhost", "surge.localhost"), ("Run.Example.COM.", "run.example.com"), ("localhost", "localhost"),
    ("a-1.b", "a-1.b"),
])
def test_check_web_host_accepts_dns_names(given: str, host: str) -> None:
    assert check_web_host(given) == host


@pytest.mark.parametrize("given", ["", "http://surge.localhost", "surge.localhost:8765", "a..b", "-a.b",
                                   "a_b.c", "surge.localhost/x", "x" * 64 + ".com", ("a." * 101) + "b"])
def test_check_web_host_refuses_what_is_no_host_name(given: str) -> None:
    with pytest.raises(ValueError, match="give a DNS name"):
        check_web_host(given)


@pytest.mark.parametrize(("host", "found"), [
    ("api.shop.surge.localhost", ("shop", "api")),
    ("api.shop.surge.localhost:8765", ("shop", "api")),
    ("API.Shop.Surge.Localhost.", ("shop", "api")),                 # case-insensitive, trailing dot
    ("x.team--shop.surge.localhost", ("team--shop", "x")),
    ("x.ap-18f3a2b4c01-9f2c4e1a7b3d5f60.surge.localhost", ("ap-18f3a2b4c01-9f2c4e1a7b3d5f60", "x")),
    ("shop.surge.localhost", ("", "")),                            # under the base, too shallow
    ("a.b.shop.surge.localhost", ("", "")),                        # too deep
    (".shop.surge.localhost", ("", "")),                           # an empty label
    ("surge.localhost", None),                                     # the base itself: the API
    ("127.0.0.1:8765", None),
    ("evil-surge.localhost", None),                                # not under it, only alike
    ("[::1]:8765", None),
    ("", None),
])
def test_split_vhost(host: str, found: tuple[str, str] | None) -> None:
    assert split_vhost(host, "surge.localhost") == found


def test_split_vhost_without_a_base_is_never_a_vhost() -> None:
    assert split_vhost("api.shop.surge.localhost", None) is None


def test_parse_head() -> None:
    head = (b"GET /web/a/b/ws?x=1 HTTP/1.1\r\nhost: h:1\r\nupgrade: websocket\r\n"
            b"sec-websocket-protocol: a, b\r\nx-empty:\r\n\r\n")
    method, target, headers = parse_head(head)
    assert (method, target) == ("GET", "/web/a/b/ws?x=1")
    assert headers == [(b"host", b"h:1"), (b"upgrade", b"websocket"), (b"sec-websocket-protocol", b"a, b"),
                       (b"x-empty", b"")]

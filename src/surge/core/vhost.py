"""Virtual hosts of web endpoints: ``{label}.{app}.{web_host}`` names the endpoint that
``/web/{app}/{label}`` does (``surge server --web-host``; docs/web.md).

Two DNS labels under the base host, most specific first, so the app reference keeps its path form
(``shop``, ``team--shop`` or an app id) and labels stay unique per app as they are in paths.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_host(web_host: str | None) -> str | None:
    """The configured base host, lowercased, without dots at either end (None: not configured)."""
    if not web_host:
        return None
    host = web_host.strip().strip(".").lower()
    return host or None


def check_web_host(web_host: str) -> str:
    """``surge server --web-host``: a DNS name (``surge.localhost``), normalized; ValueError saying
    what is wrong otherwise (a URL, a port, characters no host name has)."""
    host = normalize_host(web_host)
    if host is None or len(host) > 200 or not all(_LABEL.fullmatch(p) for p in host.split(".")):
        raise ValueError(f"--web-host {web_host!r}: give a DNS name such as surge.localhost or run.example.com "
                         "(no scheme, port or path); endpoints are then served at {label}.{app}.<that name>")
    return host


def split_vhost(host: str, web_host: str | None) -> tuple[str, str] | None:
    """``(app_ref, label)`` of a ``Host`` header value under ``web_host``; ``("", "")`` for a name
    under it that is not two labels deep (it names no endpoint); None when ``host`` is not under
    ``web_host`` (an ordinary request: the API, or ``/web/...`` by path)."""
    if not web_host:
        return None
    name = host.strip().lower()
    if name.startswith("["):          # an IPv6 literal is never a virtual host
        return None
    name = name.partition(":")[0].rstrip(".")
    suffix = "." + web_host
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 2 or not all(parts):
        return ("", "")
    label, app_ref = parts
    return app_ref, label

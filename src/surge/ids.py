"""Identifiers: a short type prefix, a millisecond timestamp (so ids sort by creation) and randomness."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """``new_id("in")`` → ``"in-18f3a2b4c01-9f2c4e1a7b3d5f60"``."""
    return f"{prefix}-{int(time.time() * 1000):x}-{secrets.token_hex(8)}"


def created_at(ident: str) -> float | None:
    """The creation time (epoch seconds) encoded in an id made by ``new_id``; None if it is not one."""
    parts = ident.split("-")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        return int(parts[1], 16) / 1000.0
    except ValueError:
        return None

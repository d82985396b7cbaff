"""The durable store: the one place that speaks SQL.

``open_store(url)`` picks the implementation from a URL; the returned store still has to be
opened (which applies pending migrations):

```python
store = open_store("sqlite:///var/lib/surge/surge.db")   # or a path, or "postgresql://..."
await store.open()
```
"""

from __future__ import annotations

import os

from surge.errors import InvalidError
from surge.store.base import (
    DEFAULT_WORKSPACE,
    TRANSITION_COLUMNS,
    AppRow,
    AppVersionRow,
    CallRow,
    ContainerRow,
    FunctionRow,
    InputEvent,
    InputRow,
    LogLine,
    NewInput,
    Store,
    Transition,
    UsageEvent,
)
from surge.store.sqlite import SqliteStore

__all__ = [
    "DEFAULT_WORKSPACE",
    "TRANSITION_COLUMNS",
    "AppRow",
    "AppVersionRow",
    "CallRow",
    "ContainerRow",
    "FunctionRow",
    "InputEvent",
    "InputRow",
    "LogLine",
    "NewInput",
    "SqliteStore",
    "Store",
    "Transition",
    "UsageEvent",
    "open_store",
]


def open_store(url: str) -> Store:
    """A store for ``url`` (not yet opened):

    - ``sqlite:///abs/path.db``, ``sqlite://:memory:``, or a plain filesystem path → SQLite;
    - ``postgresql://...`` (or ``postgres://...``) → PostgreSQL, needs the ``postgres`` extra.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return SqliteStore(os.path.expanduser(url))
    if scheme == "sqlite":
        if not rest:
            raise InvalidError(f"store URL {url!r} has no path: use sqlite:///abs/path.db or sqlite://:memory:")
        return SqliteStore(":memory:" if rest in (":memory:", "/:memory:") else rest)
    if scheme in ("postgresql", "postgres"):
        try:
            from surge.store.postgres import PostgresStore
        except ImportError as e:
            raise InvalidError(f"store URL {url!r} needs psycopg ({e}): pip install 'surge[postgres]'") from e
        return PostgresStore(url)
    raise InvalidError(f"store URL {url!r}: unknown scheme {scheme!r}; "
                       "expected sqlite:///path.db, sqlite://:memory:, postgresql://... or a file path")

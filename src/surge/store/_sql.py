"""The seam between the store logic and the two SQL databases.

Each store operation is written once, in ``SqlStore``, as a *transaction generator*: it yields
operations (the dataclasses below) and receives their results, without knowing which database
runs them. ``SqliteStore`` drives the generator synchronously on its one SQL thread, and
``PostgresStore`` drives it with ``await`` on a pooled connection; each renders the batch
operations (``Insert``, ``Guarded``) the fastest way its database allows.

```python
def count_kv(self):                                 # a transaction generator
    rows = yield Rows("SELECT COUNT(*) AS n FROM kv")
    return rows[0]["n"]
```
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

T = TypeVar("T")
Row = Mapping[str, Any]
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Rows:
    """Run one statement and return its rows (as mappings by column name)."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True)
class Exec:
    """Run one statement and return the number of rows it changed."""

    sql: str
    params: Params = ()


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert many rows into ``table`` (``columns`` in order, then ``tail``, e.g. an ON CONFLICT
    clause). Returns the number of rows inserted."""

    table: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]
    tail: str = ""


@dataclass(frozen=True, slots=True)
class Guarded:
    """Conditional updates of ``inputs``, one per row ``(id, from_states, expect_attempt, *values)``:
    ``SET columns = values WHERE id = ? AND state IN from_states [AND attempt = expect_attempt]``.
    Returns one bool per row: whether it applied. Ids must be distinct within one operation."""

    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Script:
    """Run a migration script (several statements, no parameters)."""

    sql: str


@dataclass(frozen=True, slots=True)
class MigrationLock:
    """Serialize migrations between processes sharing the database (until commit)."""


Op = Rows | Exec | Insert | Guarded | Script | MigrationLock
Tx = Generator[Op, Any, T]


def drive(tx: Tx[T], run: Callable[[Op], Any]) -> T:
    """Run a transaction generator synchronously, feeding each operation's result back."""
    try:
        op = next(tx)
        while True:
            op = tx.send(run(op))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        tx.close()


async def adrive(tx: Tx[T], run: Callable[[Op], Awaitable[Any]]) -> T:
    """``drive`` for an async database."""
    try:
        op = next(tx)
        while True:
            op = tx.send(await run(op))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        tx.close()


def single(op: Op) -> Tx[Any]:
    """A transaction of one operation."""
    return (yield op)


# -- queries and migrations (package data) ----------------------------------------------------

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """``-- name: foo`` headers, each followed by one statement; other ``--`` lines are comments."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = sql
    return queries


def load_queries() -> dict[str, str]:
    return parse_queries(resources.files(__package__).joinpath("queries.sql").read_text("utf-8"))


def load_migrations(directory: str) -> list[tuple[int, str]]:
    """``[(version, script), ...]`` from ``NNNN_name.sql`` files in this package's ``directory``."""
    found = []
    for entry in resources.files(__package__).joinpath(directory).iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}: {versions}")
    return found


QUERIES = load_queries()
NO_LIMIT = 2**62

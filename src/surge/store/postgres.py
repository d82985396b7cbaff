"""``PostgresStore``: the store on PostgreSQL, through psycopg 3 (async) and a connection pool.

Install with ``pip install 'surge[postgres]'``. Batch operations are single statements over
``unnest`` of one array per column, so a batch of 1,000 costs one round trip, not 1,000.

```python
store = PostgresStore("postgresql://postgres@127.0.0.1:5432/surge")
await store.open()                        # connects and applies pending migrations
await store.kv_set("greeting", "hello")
await store.close()
```
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from psycopg import AsyncConnection, AsyncCursor, OperationalError
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from surge.store._sql import Exec, Guarded, Insert, MigrationLock, Op, Rows, Script, Tx, adrive
from surge.store.errors import WRITE_BUDGET, StoreUnavailable
from surge.store.sqlstore import SqlStore

T = TypeVar("T")
REVIVE_INTERVAL = 0.5   # seconds between direct probes of a server that went away

_COLUMN_TYPES = """
SELECT table_name, column_name, udt_name FROM information_schema.columns
WHERE table_schema = current_schema()
"""
# Every batch statement joins ~1,000 keys against a table that is (mostly) cached. With the default
# random_page_cost = 4 the planner prefers a sequential scan + hash join until the table is tens of
# MB; the usual SSD/cached value 1.1 makes it probe the index. Lowered only, never raised.
_PLANNER = ("SELECT set_config('random_page_cost', '1.1', false) "
            "WHERE current_setting('random_page_cost')::float8 > 1.1")
# One lock per schema, so that stores in different schemas of one database do not wait on each other.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.surge_migrations'))"


class PostgresStore(SqlStore):
    migrations_dir = "migrations_pg"

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._types: dict[tuple[str, str], str] = {}   # (table, column) -> type name, for casts
        self._sql: dict[tuple[Any, ...], str] = {}      # rendered batch statements
        self.write_budget = WRITE_BUDGET                # longest wait for a pooled connection
        self._reviver: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({re.sub(r':[^:@/]*@', ':***@', self.dsn)!r})"

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError(f"{self!r} is already open")
        self._pool = self._new_pool()
        try:
            await self._pool.open(wait=True, timeout=15)
            await self._migrate()
            rows = await self._read(_COLUMN_TYPES)
            self._types = {(r["table_name"], r["column_name"]): r["udt_name"] for r in rows}
        except BaseException:
            await self.close()
            raise

    def _new_pool(self) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            self.dsn, min_size=self.min_size, max_size=self.max_size, open=False, name="surge-store",
            kwargs={"autocommit": True, "row_factory": dict_row}, configure=_configure)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if self._reviver is not None:
            self._reviver.cancel()
        if pool is not None:
            await pool.close()

    # -- after an outage -----------------------------------------------------------------------
    # The pool reconnects with exponential backoff (1, 2, 4, 8 s…), so after a 10 s outage it may
    # notice the server is back only 5+ s later. While the store is unavailable, one task probes
    # the server directly every REVIVE_INTERVAL and swaps in a fresh pool as soon as it answers.
    def _unavailable(self) -> None:
        if self._pool is not None and (self._reviver is None or self._reviver.done()):
            self._reviver = asyncio.get_running_loop().create_task(self._revive())

    async def _revive(self) -> None:
        while self._pool is not None:
            await asyncio.sleep(REVIVE_INTERVAL)
            try:
                conn = await AsyncConnection.connect(self.dsn, connect_timeout=2, autocommit=True)
                await conn.execute("SELECT 1")
                await conn.close()
            except (OperationalError, OSError):
                continue
            old, self._pool = self._pool, self._new_pool()
            await self._pool.open(wait=False)
            if old is not None:
                await old.close(timeout=self.write_budget)
            return

    async def _run(self, tx: Tx[T], *, write: bool) -> T:
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open (await store.open() first)")
        try:
            async with self._pool.connection(timeout=self.write_budget) as conn:
                cursor = conn.cursor()
                if not write:
                    return await adrive(tx, functools.partial(self._apply, cursor))
                async with conn.transaction():
                    return await adrive(tx, functools.partial(self._apply, cursor))
        except (OperationalError, PoolTimeout) as exc:
            # the server is down or unreachable (or the transaction must be retried): nothing was
            # committed, so the caller may retry (HTTP 503)
            self._unavailable()
            raise StoreUnavailable(f"the database is unavailable ({type(exc).__name__}: "
                                   f"{str(exc).strip()[:200]}); retry shortly") from exc

    async def _apply(self, cursor: AsyncCursor[DictRow], op: Op) -> Any:
        """Run one operation of a transaction generator."""
        match op:
            case Rows(sql, params):
                await cursor.execute(_translate(sql), params)
                return await cursor.fetchall()
            case Exec(sql, params):
                await cursor.execute(_translate(sql), params)
                return cursor.rowcount
            case Insert(table, columns, rows, tail):
                await cursor.execute(self._insert_sql(table, columns, tail),
                                     self._arrays(table, columns, rows))
                return cursor.rowcount
            case Guarded(columns, rows):
                return await self._guarded(cursor, columns, rows)
            case Script(sql):
                await cursor.execute(sql)   # no parameters: several statements may run
                return None
            case MigrationLock():
                await cursor.execute(_MIGRATION_LOCK)
                return None
        raise TypeError(f"unknown operation {op!r}")

    async def _guarded(self, cursor: AsyncCursor[DictRow], columns: tuple[str, ...],
                       rows: Sequence[tuple[Any, ...]]) -> list[bool]:
        key = ("guarded", columns)
        if key not in self._sql:
            casts = ", ".join(f"%b::{self._types['inputs', c]}[]" for c in columns)
            sets = ", ".join(f"{c} = u.{c}" for c in columns)
            self._sql[key] = (
                f"UPDATE inputs AS t SET {sets} "
                f"FROM unnest(%b::text[], %b::text[], %b::int4[], {casts}) AS u(_id, _from, _attempt, {', '.join(columns)}) "
                "WHERE t.id = u._id AND t.state = ANY(string_to_array(u._from, ',')) "
                "AND (u._attempt IS NULL OR t.attempt = u._attempt) RETURNING t.id")
        flat = [(input_id, ",".join(states), attempt, *values) for input_id, states, attempt, *values in rows]
        await cursor.execute(self._sql[key], self._arrays("inputs", ("id", "state", "attempt", *columns), flat))
        applied = {r["id"] for r in await cursor.fetchall()}
        return [row[0] in applied for row in rows]

    def _insert_sql(self, table: str, columns: tuple[str, ...], tail: str) -> str:
        key = ("insert", table, columns, tail)
        if key not in self._sql:
            casts = ", ".join(f"%b::{self._types[table, c]}[]" for c in columns)
            self._sql[key] = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({casts}) {tail}"
        return self._sql[key]

    def _arrays(self, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
        """Rows → one list per column. psycopg refuses lists mixing int and float, so float
        columns are made all float (a caller may well pass ``now=1`` or ``timeout=300``)."""
        if not rows:
            return [[] for _ in columns]
        arrays = [list(values) for values in zip(*rows, strict=True)]
        for i, column in enumerate(columns):
            if self._types[table, column] == "float8":
                arrays[i] = [None if v is None else float(v) for v in arrays[i]]
        return arrays


async def _configure(conn: AsyncConnection[Any]) -> None:
    await conn.execute(_PLANNER)


@functools.lru_cache(maxsize=256)
def _translate(sql: str) -> str:
    """``?`` placeholders → psycopg's ``%s`` (and a literal ``%`` → ``%%``)."""
    return sql.replace("%", "%%").replace("?", "%s")

"""Row dataclasses <-> database rows: column order for inserts, and decoding of fetched rows.

JSON fields are TEXT, states TEXT, booleans 0/1 (SQLite) or BOOLEAN (PostgreSQL), bytes BLOB/BYTEA.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from operator import attrgetter
from typing import Any, Generic, TypeVar

from surge.core.models import InputState
from surge.ids import new_id
from surge.store.base import (
    AppRow,
    AppVersionRow,
    CallRow,
    ContainerRow,
    FunctionRow,
    InputEvent,
    InputRow,
    LogLine,
    NewInput,
    UsageEvent,
)

T = TypeVar("T")
Convert = Callable[[Any], Any]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Codec(Generic[T]):
    """How one row dataclass maps to its table's columns (same names as the fields)."""

    def __init__(self, cls: type[T], *, encode: Mapping[str, Convert] | None = None,
                 decode: Mapping[str, Convert] | None = None) -> None:
        self.cls = cls
        self.columns: tuple[str, ...] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        self._get = attrgetter(*self.columns)
        encode = encode or {}
        decode = decode or {}
        self._encode = [(i, encode[c]) for i, c in enumerate(self.columns) if c in encode]
        self._plain = [c for c in self.columns if c not in decode]
        self._decode = list(decode.items())

    def values(self, obj: T) -> tuple[Any, ...]:
        """Column values of ``obj``, in ``self.columns`` order, ready to bind."""
        values: tuple[Any, ...] = self._get(obj)
        if not self._encode:
            return values
        out = list(values)
        for i, fn in self._encode:
            out[i] = fn(out[i])
        return tuple(out)

    def row(self, row: Mapping[str, Any]) -> T:
        kw = {c: row[c] for c in self._plain}
        for c, fn in self._decode:
            value = row[c]
            kw[c] = None if value is None else fn(value)
        return self.cls(**kw)

    def rows(self, rows: list[Any]) -> list[T]:
        return [self.row(r) for r in rows]


# SQLite hands back RETURNING values before REAL affinity: 1.0 would come back as 1.
APP = Codec(AppRow, decode={"created_at": float})
VERSION = Codec(AppVersionRow, decode={"spec": json.loads})
FUNCTION = Codec(FunctionRow, encode={"spec": dumps}, decode={"spec": json.loads})
CALL = Codec(CallRow, encode={"kind": str, "cancelled": bool}, decode={"cancelled": bool})
INPUT = Codec(InputRow, encode={"state": str}, decode={"state": InputState})
EVENT = Codec(InputEvent)
CONTAINER = Codec(ContainerRow, encode={"state": str, "gpu_indices": dumps, "phases": dumps},
                  decode={"gpu_indices": json.loads, "phases": json.loads})
USAGE = Codec(UsageEvent)
LOG = Codec(LogLine)


# What a new input sets; the other columns start NULL. Binding 14 columns instead of all 24 is a
# third of the cost of inserting a large call.
NEW_INPUT_COLUMNS = ("id", "call_id", "idx", "function_id", "pool_key", "state", "attempt", "args",
                     "created_at", "next_run_at", "timeout", "max_retries", "user_failures",
                     "infra_failures")


def new_inputs(call: CallRow, inputs: Iterable[NewInput],
               now: float) -> tuple[list[InputRow], list[tuple[Any, ...]]]:
    """New QUEUED inputs of ``call``: the rows, and their values for ``NEW_INPUT_COLUMNS``."""
    queued = InputState.QUEUED
    rows, values = [], []
    for i in inputs:
        row_id = new_id("in")
        rows.append(InputRow(row_id, call.id, i.idx, call.function_id, call.pool_key, queued, 0, i.args, now,
                             next_run_at=now, timeout=i.timeout, max_retries=i.max_retries))
        values.append((row_id, call.id, i.idx, call.function_id, call.pool_key, "QUEUED", 0, i.args,
                       now, now, i.timeout, i.max_retries, 0, 0))
    return rows, values

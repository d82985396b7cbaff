"""The chaos checker: classifies every accepted input as ok / lost / duplicated-completion / unexpected.

Two independent sources are read, as in Jepsen's queue checks:

- the **store** (the control plane's database, read directly, read-only): one row per input with its
  state, attempt number, failure counts and result, plus the order in which completions became
  visible (``done_seq``);
- the **probe log** the functions append to outside the platform: ``start``/``end`` lines of
  ``(input_id, attempt, pid)``.

An input is

- ``ok``: the client had it accepted, the store holds exactly one visible completion
  (``SUCCEEDED``, one ``done_seq``), the result came from the attempt the store names, and the
  probe log shows that attempt running;
- ``lost``: accepted but missing from the store, or not terminal by the deadline, or ended without a
  result (``FAILED``…) although no fault was the user's;
- ``duplicated``: its completion is visible more than once (two outputs in the call's stream, or a
  result whose attempt differs from the row's: a stale attempt's late result was taken);
- ``unexpected``: in the store or the probe log without the client ever having it accepted (a
  retried submission that made a second input, or a phantom).

Re-execution is allowed (at-least-once): a probe log may show several attempts of an input, and
``end`` lines of attempts whose results were refused. Every attempt before the final one must have
been an infrastructure failure (``infra_failures == attempt - 1``, ``user_failures == 0``).
"""

from __future__ import annotations

import collections
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge.sdk import serialization

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "EXPIRED"}


@dataclass(frozen=True)
class ProbeLine:
    kind: str
    input_id: str
    attempt: int
    pid: int
    at: float


def read_probe_log(path: Path) -> list[ProbeLine]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5:
            out.append(ProbeLine(parts[0], parts[1], int(parts[2]), int(parts[3]), float(parts[4])))
    return out


@dataclass
class StoreRow:
    input_id: str
    call_id: str
    state: str
    attempt: int
    user_failures: int
    infra_failures: int
    terminal_reason: str | None
    done_seq: int | None
    finished_at: float | None
    result: bytes | None


def read_store(db: Path, function_tag: str) -> dict[str, StoreRow]:
    """Every input of the function ``function_tag`` (all apps, all versions), read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        fn_ids = function_ids(conn.execute("SELECT id, spec FROM functions").fetchall(), function_tag)
        rows = conn.execute(f"{INPUTS_QUERY} WHERE function_id IN ({','.join('?' * len(fn_ids))})",
                            fn_ids).fetchall() if fn_ids else []
    finally:
        conn.close()
    return store_rows(rows)


INPUTS_QUERY = ("SELECT id, call_id, state, attempt, user_failures, infra_failures, terminal_reason, done_seq, "
                "finished_at, result FROM inputs")


def function_ids(functions: Iterable[Any], function_tag: str) -> list[str]:
    return [r["id"] for r in functions if json.loads(r["spec"]).get("tag") == function_tag]


def store_rows(rows: Iterable[Any]) -> dict[str, StoreRow]:
    return {r["id"]: StoreRow(r["id"], r["call_id"], r["state"], r["attempt"], r["user_failures"],
                              r["infra_failures"], r["terminal_reason"], r["done_seq"], r["finished_at"],
                              None if r["result"] is None else bytes(r["result"])) for r in rows}


@dataclass
class Verdict:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    attempts: collections.Counter[int] = field(default_factory=collections.Counter)   # final attempt → inputs
    reruns: int = 0               # attempts beyond the first (infrastructure retries)
    refused_ends: int = 0         # `end` lines of attempts whose result is not the kept one (refused or lost)
    user_retries_used: int = 0

    def add(self, kind: str, input_id: str, why: str) -> None:
        self.counts[kind] += 1
        if kind != "ok":
            self.problems[kind].append(f"{input_id}: {why}")

    def summary(self) -> dict[str, Any]:
        return {"ok": self.counts["ok"], "lost": self.counts["lost"],
                "duplicated": self.counts["duplicated"], "unexpected": self.counts["unexpected"],
                "reruns": self.reruns, "completed_attempts_not_kept": self.refused_ends,
                "user_retries_used": self.user_retries_used,
                "final_attempts": dict(sorted(self.attempts.items()))}

    def assert_clean(self) -> None:
        bad = {k: v[:5] for k, v in self.problems.items() if v}
        assert not bad, f"checker: {self.summary()} — first problems: {bad}"


def classify(accepted_calls: Iterable[str], store: dict[str, StoreRow], probes: list[ProbeLine], *,
             outputs_seen: dict[str, int] | None = None) -> Verdict:
    """``accepted_calls``: call ids the clients got back from the API (a spawn is one call of one
    input). ``outputs_seen``: how many times each input appeared in its call's output stream (read
    through the API), when collected."""
    v = Verdict()
    calls = set(accepted_calls)
    by_call: dict[str, list[str]] = collections.defaultdict(list)
    for row in store.values():
        by_call[row.call_id].append(row.input_id)
    for cid in sorted(calls - set(by_call)):
        v.add("lost", cid, "call accepted but not in the store")
    accepted = {iid for cid in calls for iid in by_call.get(cid, ())}
    by_input: dict[str, list[ProbeLine]] = collections.defaultdict(list)
    for p in probes:
        by_input[p.input_id].append(p)
    for iid in sorted(accepted):
        row = store[iid]
        if row.state not in TERMINAL:
            v.add("lost", iid, f"still {row.state} (attempt {row.attempt})")
            continue
        v.attempts[row.attempt] += 1
        v.reruns += max(0, row.attempt - 1)
        v.user_retries_used += row.user_failures
        starts = {p.attempt for p in by_input[iid] if p.kind == "start"}
        ends = {p.attempt for p in by_input[iid] if p.kind == "end"}
        v.refused_ends += len(ends - {row.attempt})
        if outputs_seen is not None and outputs_seen.get(iid, 0) > 1:
            v.add("duplicated", iid, f"appeared {outputs_seen[iid]} times in the output stream")
            continue
        if row.state != "SUCCEEDED":
            v.add("lost", iid, f"ended {row.state}/{row.terminal_reason} without a result")
            continue
        got = serialization.loads(row.result) if row.result is not None else None
        if not isinstance(got, dict) or got.get("input_id") != iid:
            v.add("unexpected", iid, f"result {got!r} is not this input's")
            continue
        if got.get("attempt") != row.attempt:
            v.add("duplicated", iid, f"the store says attempt {row.attempt} but kept attempt "
                                     f"{got.get('attempt')}'s result (a stale completion was accepted)")
            continue
        if row.attempt not in starts:
            v.add("unexpected", iid, f"attempt {row.attempt} completed but the probe log never saw it start "
                                     f"(saw {sorted(starts)})")
            continue
        if row.user_failures != 0 or row.infra_failures != row.attempt - 1:
            v.add("lost", iid, f"re-runs not all infrastructure retries: attempt {row.attempt}, "
                               f"user_failures {row.user_failures}, infra_failures {row.infra_failures}")
            continue
        v.add("ok", iid, "")
    for iid in sorted(set(store) - accepted):
        v.add("unexpected", iid, f"in the store ({store[iid].state}) but never accepted by a client")
    for iid in sorted(set(by_input) - accepted - set(store)):
        v.add("unexpected", iid, "in the probe log only")
    return v


def completions_in_order(store: dict[str, StoreRow]) -> list[tuple[float, str]]:
    """``(finished_at, input_id)`` of every finished input, by time."""
    return sorted((r.finished_at, r.input_id) for r in store.values() if r.finished_at is not None)

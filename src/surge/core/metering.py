"""Per-second metering: container lifecycle events → phase segments → usage and cost.

A container's life splits into three billed phases: ``cold_start`` (launched, not ready
yet), ``busy`` (running at least one input) and ``idle`` (ready and warm, waiting: the cost of
keep-warm). ``segments`` rebuilds them from the recorded events; ``summarize`` prices them.

Billing is per second. Exact fractional seconds are priced (``cost``), and, like platforms
that bill at a 1-second granularity, each container's total is also rounded UP to whole
seconds (``billed_seconds``, priced as ``billed_cost``). Rounding is per container, not per
segment, so a container that flips between busy and idle a thousand times is not charged a
thousand partial seconds.

>>> segs = segments([("c1", "started", 0.0), ("c1", "ready", 2.0), ("c1", "busy", 3.0)], now=4.5)
>>> [(s.phase, s.start, s.end) for s in segs]
[('cold_start', 0.0, 2.0), ('idle', 2.0, 3.0), ('busy', 3.0, 4.5)]
>>> report = summarize(segs, {"c1": ContainerResources("T4", 1, 1.0, 1024)}, DEFAULT_PRICES)
>>> report.billed_seconds
{'c1': 5}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from surge.errors import InvalidError

__all__ = [
    "DEFAULT_PRICES",
    "EVENT_KINDS",
    "PHASES",
    "START_KINDS",
    "ColdStarts",
    "ContainerResources",
    "PriceTable",
    "Segment",
    "UsageLine",
    "UsageReport",
    "cold_starts",
    "segments",
    "summarize",
]

PHASES: tuple[str, ...] = ("cold_start", "busy", "idle")
EVENT_KINDS: frozenset[str] = frozenset({"started", "ready", "busy", "idle", "stopped"})

# Float sums of many segments land a hair above a whole second (3.0000000000000004); that
# must not bill a 4th second.
_ROUNDING_SLACK = 1e-9


@dataclass(frozen=True)
class PriceTable:
    """Per-second list prices, in dollars: per GPU by type, per CPU core, per GiB of memory."""

    gpu_per_second: Mapping[str, float]
    cpu_core_per_second: float
    memory_gib_per_second: float

    def __post_init__(self) -> None:
        prices = {
            "cpu_core_per_second": self.cpu_core_per_second,
            "memory_gib_per_second": self.memory_gib_per_second,
        }
        prices.update({f"gpu_per_second[{k!r}]": v for k, v in self.gpu_per_second.items()})
        for name, value in prices.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidError(f"price {name}={value!r} must be a number >= 0 (dollars per second)")
        # A read-only copy: the table is shared, and a caller's later edit must not reprice.
        object.__setattr__(self, "gpu_per_second", MappingProxyType(dict(self.gpu_per_second)))

    def to_json(self) -> str:
        """The table as JSON, the format ``from_json`` reads."""
        return json.dumps(
            {
                "gpu_per_second": dict(self.gpu_per_second),
                "cpu_core_per_second": self.cpu_core_per_second,
                "memory_gib_per_second": self.memory_gib_per_second,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, base: PriceTable | None = None) -> PriceTable:
        """Read a table written by ``to_json``; with ``base``, keys left out keep its prices.

        >>> table = PriceTable.from_json('{"gpu_per_second": {"H100": 0.001}}', base=DEFAULT_PRICES)
        >>> table.gpu_per_second["H100"], table.gpu_per_second["T4"]
        (0.001, 0.000164)
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidError(f"price table is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidError(f"price table must be a JSON object, got {type(data).__name__}")
        known = {"gpu_per_second", "cpu_core_per_second", "memory_gib_per_second"}
        if unknown := sorted(set(data) - known):
            raise InvalidError(f"unknown price table keys {unknown}; allowed: {sorted(known)}")
        gpus = data.get("gpu_per_second", {})
        if not isinstance(gpus, dict):
            raise InvalidError(f"gpu_per_second must be an object of GPU type -> price, got {gpus!r}")
        if base is None:
            if missing := sorted(known - set(data)):
                raise InvalidError(f"price table is missing {missing} (or pass base= to fill them in)")
            return cls(gpus, data["cpu_core_per_second"], data["memory_gib_per_second"])
        return cls(
            {**base.gpu_per_second, **gpus},
            data.get("cpu_core_per_second", base.cpu_core_per_second),
            data.get("memory_gib_per_second", base.memory_gib_per_second),
        )


DEFAULT_PRICES = PriceTable(
    gpu_per_second={
        "B200": 0.001736,
        "H200": 0.001261,
        "H100": 0.001097,
        "A100-80GB": 0.000694,
        "A100-40GB": 0.000583,
        "L40S": 0.000542,
        "A10G": 0.000306,
        "L4": 0.000222,
        "T4": 0.000164,
    },
    cpu_core_per_second=0.0000131,
    memory_gib_per_second=0.00000222,
)
"""Defaults shaped like public per-second list prices for serverless GPUs (2025).

They are only a starting point for showing relative costs: an operator sets their own table
(``PriceTable.from_json(text, base=DEFAULT_PRICES)`` overrides just the keys it names).
"""


@dataclass(frozen=True)
class ContainerResources:
    """What one container holds while it lives (the placed GPU type, not the request)."""

    gpu_type: str | None
    gpu_count: int
    cpu: float
    memory_mib: int

    def per_second(self, prices: PriceTable) -> tuple[float, float, float, float]:
        """(gpus, cpu cores, memory GiB, dollars) accrued per second of life."""
        memory_gib = self.memory_mib / 1024
        rate = self.cpu * prices.cpu_core_per_second + memory_gib * prices.memory_gib_per_second
        if self.gpu_type is None or self.gpu_count == 0:
            return 0.0, self.cpu, memory_gib, rate
        if self.gpu_type not in prices.gpu_per_second:
            raise InvalidError(
                f"no price for GPU type {self.gpu_type!r}; priced types: {sorted(prices.gpu_per_second)}"
            )
        gpus = float(self.gpu_count)
        return gpus, self.cpu, memory_gib, rate + gpus * prices.gpu_per_second[self.gpu_type]


@dataclass(frozen=True)
class Segment:
    """One stretch of one container's life in one phase, ``start`` to ``end`` (seconds)."""

    container_id: str
    phase: str  # "cold_start" | "busy" | "idle"
    start: float
    end: float


_PHASE_AFTER = {"started": "cold_start", "ready": "idle", "idle": "idle", "busy": "busy"}
# kind -> open phases during which that event changes nothing.
_IGNORED_DURING = {
    "started": frozenset(PHASES),
    "ready": frozenset({"idle", "busy"}),
    "idle": frozenset({"idle"}),
    "busy": frozenset({"busy"}),
}


def segments(events: Sequence[tuple[str, str, float]], now: float) -> list[Segment]:
    """Rebuild phase segments from ``(container_id, kind, at)`` events.

    ``started`` opens a cold start; ``ready`` and ``idle`` open an idle stretch, ``busy`` a busy
    one; ``stopped`` closes whatever is open. Events may come unsorted and interleaved across
    containers (they are stably sorted by time); a repeated event is ignored, events after
    ``stopped`` are ignored until the next ``started``, and a container still running has its
    open segment end at ``now``. Zero-length segments are dropped.
    """
    for cid, kind, _ in events:
        if kind not in EVENT_KINDS:
            raise InvalidError(
                f"unknown event kind {kind!r} for container {cid!r}; expected one of {sorted(EVENT_KINDS)}"
            )
    out: list[Segment] = []
    open_: dict[str, tuple[str, float]] = {}  # container -> (phase, since)
    stopped: set[str] = set()
    for cid, kind, at in sorted(events, key=lambda e: e[2]):
        if kind == "stopped":
            if cid in open_:
                phase, since = open_.pop(cid)
                out.append(Segment(cid, phase, since, at))
            stopped.add(cid)
            continue
        if cid in stopped and kind != "started":
            continue  # a late report from a container already gone
        stopped.discard(cid)
        phase = _PHASE_AFTER[kind]
        current = open_.get(cid)
        if current is not None and current[0] in _IGNORED_DURING[kind]:
            continue  # a duplicate, or a start / ready the container is already past
        if current is not None:
            out.append(Segment(cid, current[0], current[1], at))
        open_[cid] = (phase, at)
    out.extend(Segment(cid, phase, since, now) for cid, (phase, since) in open_.items())
    return sorted((s for s in out if s.end > s.start), key=lambda s: (s.start, s.container_id))


@dataclass(frozen=True)
class UsageLine:
    """Resource use and exact cost of one phase (or ``"total"``)."""

    phase: str
    seconds: float = 0.0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    memory_gib_seconds: float = 0.0
    cost: float = 0.0

    def __add__(self, other: UsageLine) -> UsageLine:
        return UsageLine(
            self.phase,
            self.seconds + other.seconds,
            self.gpu_seconds + other.gpu_seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.memory_gib_seconds + other.memory_gib_seconds,
            self.cost + other.cost,
        )


@dataclass(frozen=True)
class UsageReport:
    """Usage per phase and in total, exact and billed; with ``group_by``, also per group.

    ``lines_by_phase`` always has every phase of ``PHASES`` (zero when unused).
    ``billed_seconds`` is per container, each rounded up to a whole second, and
    ``billed_cost`` prices those whole seconds. Groups carry no ``by_group`` of their own.
    """

    lines_by_phase: dict[str, UsageLine]
    total: UsageLine
    billed_seconds: dict[str, int]
    billed_cost: float
    by_group: dict[str, UsageReport] = field(default_factory=dict)


def _clip(segs: Iterable[Segment], since: float | None, until: float | None) -> list[Segment]:
    out = []
    for s in segs:
        start = s.start if since is None else max(s.start, since)
        end = s.end if until is None else min(s.end, until)
        if end > start:
            out.append(Segment(s.container_id, s.phase, start, end))
    return out


def _report(segs: list[Segment], rates: Mapping[str, tuple[float, float, float, float]]) -> UsageReport:
    lines = {phase: UsageLine(phase) for phase in PHASES}
    per_container: dict[str, float] = {}
    for s in segs:
        gpus, cpu, memory_gib, rate = rates[s.container_id]
        seconds = s.end - s.start
        lines[s.phase] += UsageLine(
            s.phase, seconds, gpus * seconds, cpu * seconds, memory_gib * seconds, rate * seconds
        )
        per_container[s.container_id] = per_container.get(s.container_id, 0.0) + seconds
    total = UsageLine("total")
    for line in lines.values():
        total += line
    # At least one second: every segment here is longer than zero.
    billed = {cid: max(1, math.ceil(t - _ROUNDING_SLACK)) for cid, t in sorted(per_container.items())}
    return UsageReport(lines, total, billed, sum(n * rates[cid][3] for cid, n in billed.items()))


def summarize(
    segments: Iterable[Segment],
    resources: Mapping[str, ContainerResources],
    prices: PriceTable,
    *,
    since: float | None = None,
    until: float | None = None,
    group_by: Callable[[str], str] | None = None,
) -> UsageReport:
    """Price ``segments`` clipped to ``[since, until]``; ``group_by`` maps a container to a group.

    >>> segs = [Segment("c1", "busy", 0.0, 10.0)]
    >>> r = summarize(segs, {"c1": ContainerResources(None, 0, 2.0, 2048)}, DEFAULT_PRICES, until=4.5)
    >>> r.total.cpu_seconds, r.total.memory_gib_seconds, r.billed_seconds
    (9.0, 9.0, {'c1': 5})
    """
    clipped = _clip(segments, since, until)
    missing = sorted({s.container_id for s in clipped} - set(resources))
    if missing:
        raise InvalidError(f"no resources recorded for containers {missing}")
    rates = {cid: resources[cid].per_second(prices) for cid in {s.container_id for s in clipped}}
    report = _report(clipped, rates)
    if group_by is None:
        return report
    groups: dict[str, list[Segment]] = {}
    for s in clipped:
        groups.setdefault(group_by(s.container_id), []).append(s)
    by_group = {name: _report(segs, rates) for name, segs in sorted(groups.items())}
    return UsageReport(
        report.lines_by_phase, report.total, report.billed_seconds, report.billed_cost, by_group
    )


# How a container's process started (agent/starts.py), slowest first; "zygote" is a snapshot's own
# process, metered as its function's memory.
START_KINDS: tuple[str, ...] = ("fresh", "template", "snapshot", "zygote")


@dataclass(frozen=True)
class ColdStarts:
    """Cold starts of one kind: how many, how many became ready, and their seconds to ready."""

    count: int = 0
    ready: int = 0
    seconds: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.seconds / self.ready if self.ready else None


def cold_starts(starts: Iterable[tuple[str | None, float | None]]) -> dict[str, ColdStarts]:
    """Group ``(start kind, seconds to ready or None)`` by kind; every kind of ``START_KINDS`` is
    present, and a container recorded before start kinds existed counts as ``"fresh"``.

    >>> r = cold_starts([("snapshot", 0.004), ("snapshot", 0.006), (None, 0.5), ("template", None)])
    >>> r["snapshot"].count, round(r["snapshot"].mean or 0, 3), r["fresh"].ready, r["template"].mean
    (2, 0.005, 1, None)
    """
    out = {k: ColdStarts() for k in START_KINDS}
    for kind, seconds in starts:
        key = kind if kind in out else "fresh"
        cur = out[key]
        if seconds is None:
            out[key] = ColdStarts(cur.count + 1, cur.ready, cur.seconds)
        else:
            out[key] = ColdStarts(cur.count + 1, cur.ready + 1, cur.seconds + seconds)
    return out

from __future__ import annotations

import doctest
import json
import math
import random

import pytest

import surge.core.metering
from surge.core.metering import (
    DEFAULT_PRICES,
    PHASES,
    ContainerResources,
    PriceTable,
    Segment,
    UsageLine,
    UsageReport,
    segments,
    summarize,
)
from surge.core.models import GPU_TYPES
from surge.errors import InvalidError

Ev = tuple[str, str, float]

# --- segments -------------------------------------------------------------------------------------

SEGMENT_CASES: list[tuple[str, list[Ev], float, list[tuple[str, str, float, float]]]] = [
    ("no events", [], 10.0, []),
    (
        "full life",
        [("c", "started", 0), ("c", "ready", 2), ("c", "busy", 3), ("c", "idle", 5), ("c", "stopped", 9)],
        100.0,
        [("c", "cold_start", 0, 2), ("c", "idle", 2, 3), ("c", "busy", 3, 5), ("c", "idle", 5, 9)],
    ),
    (
        "still running ends at now",
        [("c", "started", 0), ("c", "ready", 2), ("c", "busy", 3)],
        7.5,
        [("c", "cold_start", 0, 2), ("c", "idle", 2, 3), ("c", "busy", 3, 7.5)],
    ),
    ("still starting ends at now", [("c", "started", 1)], 4.0, [("c", "cold_start", 1, 4)]),
    (
        "stopped before ready: only cold start",
        [("c", "started", 0), ("c", "stopped", 3)],
        10.0,
        [("c", "cold_start", 0, 3)],
    ),
    (
        "stopped while busy",
        [("c", "started", 0), ("c", "ready", 1), ("c", "busy", 1), ("c", "stopped", 4)],
        10.0,
        [("c", "cold_start", 0, 1), ("c", "busy", 1, 4)],
    ),
    (
        "unsorted",
        [("c", "stopped", 9), ("c", "busy", 3), ("c", "started", 0), ("c", "idle", 5), ("c", "ready", 2)],
        100.0,
        [("c", "cold_start", 0, 2), ("c", "idle", 2, 3), ("c", "busy", 3, 5), ("c", "idle", 5, 9)],
    ),
    (
        "duplicates are ignored",
        [
            ("c", "started", 0), ("c", "started", 0), ("c", "started", 1),
            ("c", "ready", 2), ("c", "ready", 2),
            ("c", "busy", 3), ("c", "busy", 4), ("c", "idle", 5), ("c", "idle", 6), ("c", "stopped", 9),
            ("c", "stopped", 9),
        ],
        100.0,
        [("c", "cold_start", 0, 2), ("c", "idle", 2, 3), ("c", "busy", 3, 5), ("c", "idle", 5, 9)],
    ),
    (
        "a late ready while busy is ignored",
        [("c", "started", 0), ("c", "ready", 1), ("c", "busy", 2), ("c", "ready", 3), ("c", "idle", 4)],
        5.0,
        [("c", "cold_start", 0, 1), ("c", "idle", 1, 2), ("c", "busy", 2, 4), ("c", "idle", 4, 5)],
    ),
    (
        "events after stopped are ignored",
        [("c", "started", 0), ("c", "stopped", 2), ("c", "idle", 3), ("c", "busy", 4), ("c", "stopped", 5)],
        10.0,
        [("c", "cold_start", 0, 2)],
    ),
    (
        "started again after stopped",
        [("c", "started", 0), ("c", "stopped", 2), ("c", "started", 5), ("c", "ready", 6)],
        8.0,
        [("c", "cold_start", 0, 2), ("c", "cold_start", 5, 6), ("c", "idle", 6, 8)],
    ),
    ("stopped with nothing open", [("c", "stopped", 1)], 5.0, []),
    ("ready without started", [("c", "ready", 2), ("c", "stopped", 4)], 5.0, [("c", "idle", 2, 4)]),
    ("busy without started", [("c", "busy", 2)], 5.0, [("c", "busy", 2, 5)]),
    (
        "busy before any ready ends the cold start",
        [("c", "started", 0), ("c", "busy", 2), ("c", "idle", 3)],
        4.0,
        [("c", "cold_start", 0, 2), ("c", "busy", 2, 3), ("c", "idle", 3, 4)],
    ),
    (
        "idle before any ready ends the cold start",
        [("c", "started", 0), ("c", "idle", 2)],
        4.0,
        [("c", "cold_start", 0, 2), ("c", "idle", 2, 4)],
    ),
    (
        "zero-length segments dropped (same-time events keep input order)",
        [("c", "started", 0), ("c", "ready", 1), ("c", "busy", 1), ("c", "idle", 1), ("c", "stopped", 3)],
        10.0,
        [("c", "cold_start", 0, 1), ("c", "idle", 1, 3)],
    ),
    ("open segment starting after now is dropped", [("c", "started", 5)], 4.0, []),
    (
        "interleaved containers, sorted by start then id",
        [
            ("b", "started", 1), ("a", "started", 1), ("a", "ready", 2), ("b", "ready", 3),
            ("a", "busy", 4), ("b", "stopped", 5), ("a", "stopped", 6),
        ],
        10.0,
        [
            ("a", "cold_start", 1, 2), ("b", "cold_start", 1, 3), ("a", "idle", 2, 4),
            ("b", "idle", 3, 5), ("a", "busy", 4, 6),
        ],
    ),
]


@pytest.mark.parametrize(
    ("events", "now", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in SEGMENT_CASES],
)
def test_segments(events: list[Ev], now: float, expected: list[tuple[str, str, float, float]]) -> None:
    assert segments(events, now) == [Segment(*e) for e in expected]


def test_segments_of_shuffled_interleaved_events() -> None:
    events: list[Ev] = []
    for i in range(20):
        cid, t0 = f"c{i}", float(i)
        events += [(cid, "started", t0), (cid, "ready", t0 + 1.5), (cid, "busy", t0 + 2)]
        events.append((cid, "idle", t0 + 4))
        if i % 2:
            events.append((cid, "stopped", t0 + 10))
    expected = segments(events, now=50.0)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    assert segments(shuffled, now=50.0) == expected
    assert len(expected) == 20 * 4
    # odd containers live 10 s each; even ones run until now=50
    expected_seconds = 10 * 10 + sum(50.0 - i for i in range(0, 20, 2))
    assert sum(s.end - s.start for s in expected) == pytest.approx(expected_seconds)


def test_segments_rejects_unknown_kind() -> None:
    with pytest.raises(InvalidError, match="unknown event kind 'paused' for container 'c'"):
        segments([("c", "started", 0.0), ("c", "paused", 1.0)], now=2.0)


# --- prices ---------------------------------------------------------------------------------------


def test_default_prices_cover_every_gpu_type() -> None:
    assert set(DEFAULT_PRICES.gpu_per_second) == set(GPU_TYPES)
    order = ["B200", "H200", "H100", "A100-80GB", "A100-40GB", "L40S", "A10G", "L4", "T4"]
    prices = [DEFAULT_PRICES.gpu_per_second[g] for g in order]
    assert prices == sorted(prices, reverse=True)
    assert DEFAULT_PRICES.gpu_per_second["H100"] == 0.001097
    assert DEFAULT_PRICES.cpu_core_per_second == 0.0000131
    assert DEFAULT_PRICES.memory_gib_per_second == 0.00000222


def test_price_table_json_round_trip() -> None:
    text = DEFAULT_PRICES.to_json()
    assert json.loads(text)["gpu_per_second"]["T4"] == 0.000164
    assert PriceTable.from_json(text) == DEFAULT_PRICES


def test_price_table_from_json_over_a_base() -> None:
    text = '{"gpu_per_second": {"H100": 0.002, "MI300X": 0.0015}, "cpu_core_per_second": 0}'
    table = PriceTable.from_json(text, base=DEFAULT_PRICES)
    assert table.gpu_per_second["H100"] == 0.002
    assert table.gpu_per_second["MI300X"] == 0.0015
    assert table.gpu_per_second["T4"] == DEFAULT_PRICES.gpu_per_second["T4"]
    assert table.cpu_core_per_second == 0
    assert table.memory_gib_per_second == DEFAULT_PRICES.memory_gib_per_second
    assert PriceTable.from_json("{}", base=DEFAULT_PRICES) == DEFAULT_PRICES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object, got list"),
        ('{"gpu_per_second": {}, "cpu": 1}', r"unknown price table keys \['cpu'\]"),
        ('{"gpu_per_second": [1]}', "gpu_per_second must be an object"),
        ('{"gpu_per_second": {}}', r"missing \['cpu_core_per_second', 'memory_gib_per_second'\]"),
        (
            '{"gpu_per_second": {"H100": -1}, "cpu_core_per_second": 0, "memory_gib_per_second": 0}',
            r"price gpu_per_second\['H100'\]=-1 must be a number >= 0",
        ),
        (
            '{"gpu_per_second": {}, "cpu_core_per_second": "0.1", "memory_gib_per_second": 0}',
            "price cpu_core_per_second='0.1'",
        ),
        (
            '{"gpu_per_second": {}, "cpu_core_per_second": 0, "memory_gib_per_second": NaN}',
            "price memory_gib_per_second=nan",
        ),
        (
            '{"gpu_per_second": {"T4": true}, "cpu_core_per_second": 0, "memory_gib_per_second": 0}',
            r"price gpu_per_second\['T4'\]=True",
        ),
    ],
)
def test_price_table_from_json_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        PriceTable.from_json(text)


def test_price_table_is_read_only() -> None:
    gpus = {"T4": 0.1}
    table = PriceTable(gpus, 0.0, 0.0)
    gpus["T4"] = 99.0
    assert table.gpu_per_second["T4"] == 0.1
    with pytest.raises(TypeError):
        table.gpu_per_second["T4"] = 1.0  # type: ignore[index]


# --- summarize ------------------------------------------------------------------------------------

H100 = ContainerResources("H100", 1, 2.0, 4096)  # 0.001097 + 2 * 0.0000131 + 4 * 0.00000222
H100_RATE = 0.00113208
CPU = ContainerResources(None, 0, 1.0, 1024)  # 0.0000131 + 0.00000222
CPU_RATE = 0.00001532

G_EVENTS: list[Ev] = [
    ("g", "started", 0), ("g", "ready", 10), ("g", "busy", 12), ("g", "idle", 20), ("g", "stopped", 80)
]
C_EVENTS: list[Ev] = [("c", "started", 5), ("c", "ready", 5.5), ("c", "busy", 6), ("c", "stopped", 7.25)]


def _line(phase: str, seconds: float, res: ContainerResources, rate: float) -> UsageLine:
    gpus = res.gpu_count if res.gpu_type else 0
    memory_gib = res.memory_mib / 1024
    return UsageLine(phase, seconds, gpus * seconds, res.cpu * seconds, memory_gib * seconds, rate * seconds)


def _assert_line(actual: UsageLine, expected: UsageLine) -> None:
    assert actual.phase == expected.phase
    for name in ("seconds", "gpu_seconds", "cpu_seconds", "memory_gib_seconds", "cost"):
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-12, abs=1e-15), name


def test_resource_rates() -> None:
    assert H100.per_second(DEFAULT_PRICES) == pytest.approx((1.0, 2.0, 4.0, H100_RATE))
    assert CPU.per_second(DEFAULT_PRICES) == pytest.approx((0.0, 1.0, 1.0, CPU_RATE))
    two_t4 = ContainerResources("T4", 2, 0.5, 512)
    expected = 2 * 0.000164 + 0.5 * 0.0000131 + 0.5 * 0.00000222
    assert two_t4.per_second(DEFAULT_PRICES)[3] == pytest.approx(expected)


def test_gpu_type_without_gpus_costs_nothing_even_unpriced() -> None:
    no_gpus = ContainerResources("TPU", 0, 1.0, 1024)
    assert no_gpus.per_second(DEFAULT_PRICES) == pytest.approx((0.0, 1.0, 1.0, CPU_RATE))


def test_unpriced_gpu_type() -> None:
    with pytest.raises(InvalidError, match=r"no price for GPU type 'MI300X'; priced types: \[.*'T4'\]"):
        ContainerResources("MI300X", 1, 1.0, 1024).per_second(DEFAULT_PRICES)


def test_summarize_hand_computed() -> None:
    segs = segments(G_EVENTS + C_EVENTS, now=100.0)
    r = summarize(segs, {"g": H100, "c": CPU}, DEFAULT_PRICES)
    # g: cold 0-10, idle 10-12 and 20-80, busy 12-20; c: cold 5-5.5, idle 5.5-6, busy 6-7.25
    lines = r.lines_by_phase
    cold = _line("cold_start", 10, H100, H100_RATE) + _line("", 0.5, CPU, CPU_RATE)
    _assert_line(lines["cold_start"], cold)
    _assert_line(lines["busy"], _line("busy", 8, H100, H100_RATE) + _line("", 1.25, CPU, CPU_RATE))
    _assert_line(lines["idle"], _line("idle", 62, H100, H100_RATE) + _line("", 0.5, CPU, CPU_RATE))
    assert r.lines_by_phase["cold_start"].cost == pytest.approx(0.0113208 + 0.00000766)
    assert r.lines_by_phase["busy"].cost == pytest.approx(0.00905664 + 0.00001915)
    assert r.lines_by_phase["idle"].cost == pytest.approx(0.07018896 + 0.00000766)
    _assert_line(r.total, UsageLine("total", 82.25, 80.0, 162.25, 322.25, 0.0905664 + 0.00003447))
    assert r.billed_seconds == {"c": 3, "g": 80}
    assert r.billed_cost == pytest.approx(80 * H100_RATE + 3 * CPU_RATE)
    assert r.by_group == {}


def test_summarize_every_phase_present() -> None:
    r = summarize([], {}, DEFAULT_PRICES)
    assert list(r.lines_by_phase) == list(PHASES)
    assert all(line == UsageLine(line.phase) for line in r.lines_by_phase.values())
    assert r == UsageReport({p: UsageLine(p) for p in PHASES}, UsageLine("total"), {}, 0.0)


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, {"cold_start": 10, "idle": 62, "busy": 8}),
        (5.0, None, {"cold_start": 5, "idle": 62, "busy": 8}),
        (None, 15.0, {"cold_start": 10, "idle": 2, "busy": 3}),
        (11.0, 30.0, {"cold_start": 0, "idle": 11, "busy": 8}),
        (12.0, 20.0, {"cold_start": 0, "idle": 0, "busy": 8}),
        (-50.0, 500.0, {"cold_start": 10, "idle": 62, "busy": 8}),
        (80.0, None, {"cold_start": 0, "idle": 0, "busy": 0}),
        (30.0, 20.0, {"cold_start": 0, "idle": 0, "busy": 0}),
    ],
)
def test_summarize_clips(since: float | None, until: float | None, expected: dict[str, float]) -> None:
    r = summarize(segments(G_EVENTS, now=100.0), {"g": H100}, DEFAULT_PRICES, since=since, until=until)
    assert {p: line.seconds for p, line in r.lines_by_phase.items()} == pytest.approx(expected)
    total = sum(expected.values())
    assert r.total.cost == pytest.approx(total * H100_RATE)
    assert r.billed_seconds == ({"g": math.ceil(total)} if total else {})


@pytest.mark.parametrize(
    ("lengths", "billed"),
    [
        ([0.25], 1),  # a fraction of a second bills a whole one
        ([1e-12], 1),
        ([1.0], 1),
        ([1.0001], 2),
        ([0.1] * 30, 3),  # 3.0000000000000004 in floats: still 3
        ([2.5, 0.5], 3),  # rounded per container, not per segment
        ([0.4, 0.4, 0.4], 2),
    ],
)
def test_billed_seconds_round_up_per_container(lengths: list[float], billed: int) -> None:
    segs, t = [], 0.0
    for n in lengths:
        segs.append(Segment("c", "busy", t, t + n))
        t += n
    r = summarize(segs, {"c": CPU}, DEFAULT_PRICES)
    assert r.billed_seconds == {"c": billed}
    assert r.billed_cost == pytest.approx(billed * CPU_RATE)
    assert r.total.cost == pytest.approx(sum(lengths) * CPU_RATE)


def test_summarize_groups() -> None:
    events = G_EVENTS + C_EVENTS + [("g2", "started", 0), ("g2", "ready", 1), ("g2", "stopped", 3.5)]
    functions = {"g": "embed", "g2": "embed", "c": "etl"}
    resources = {"g": H100, "g2": H100, "c": CPU}
    r = summarize(segments(events, now=100.0), resources, DEFAULT_PRICES, group_by=functions.__getitem__)
    assert list(r.by_group) == ["embed", "etl"]
    embed, etl = r.by_group["embed"], r.by_group["etl"]
    assert embed.billed_seconds == {"g": 80, "g2": 4}
    assert etl.billed_seconds == {"c": 3}
    _assert_line(embed.total, _line("total", 83.5, H100, H100_RATE))
    _assert_line(etl.total, _line("total", 2.25, CPU, CPU_RATE))
    assert embed.lines_by_phase["cold_start"].seconds == pytest.approx(11.0)
    assert embed.lines_by_phase["idle"].seconds == pytest.approx(64.5)
    assert embed.by_group == {} and etl.by_group == {}
    # the groups add up to the whole
    assert embed.total.cost + etl.total.cost == pytest.approx(r.total.cost)
    assert embed.billed_cost + etl.billed_cost == pytest.approx(r.billed_cost)
    assert r.billed_seconds == {"c": 3, "g": 80, "g2": 4}


def test_summarize_needs_resources_of_every_container_in_range() -> None:
    segs = segments(G_EVENTS + C_EVENTS, now=100.0)
    with pytest.raises(InvalidError, match=r"no resources recorded for containers \['c'\]"):
        summarize(segs, {"g": H100}, DEFAULT_PRICES)
    # a container entirely outside the range needs none
    assert summarize(segs, {"g": H100}, DEFAULT_PRICES, since=20.0).billed_seconds == {"g": 60}


def test_usage_line_add() -> None:
    a = UsageLine("busy", 1, 2, 3, 4, 5)
    assert a + UsageLine("x", 10, 20, 30, 40, 50) == UsageLine("busy", 11, 22, 33, 44, 55)


def test_doctests() -> None:
    assert doctest.testmod(surge.core.metering).failed == 0

from __future__ import annotations

import doctest
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import surge.core.autoscaler
from surge.core.autoscaler import (
    LIVE_STATES,
    AutoscalerConfig,
    ContainerView,
    PoolView,
    ScaleDecision,
    SimulationResult,
    decide,
    poisson_trace,
    simulate,
)
from surge.core.models import ContainerState
from surge.errors import InvalidError

NOW = 1000.0
W = 60.0  # the default scaledown_window


def idle(cid: str, since: float | None, started_at: float = 0.0) -> ContainerView:
    return ContainerView(cid, ContainerState.IDLE, 0, since, started_at)


def busy(cid: str, inflight: int = 1) -> ContainerView:
    return ContainerView(cid, ContainerState.BUSY, inflight, None, 0.0)


def starting(cid: str) -> ContainerView:
    return ContainerView(cid, ContainerState.STARTING, 0, None, NOW - 1)


def stopping(cid: str, inflight: int = 0) -> ContainerView:
    return ContainerView(cid, ContainerState.STOPPING, inflight, None, 0.0)


def stopped(cid: str) -> ContainerView:
    return ContainerView(cid, ContainerState.STOPPED, 0, None, 0.0)


Cfg = AutoscalerConfig

# (id, config, queued, containers, expected (start, stop, desired)); now is NOW.
Expected = tuple[int, tuple[str, ...], int]  # start, stop, desired
DECISIONS: list[tuple[str, AutoscalerConfig, int, tuple[ContainerView, ...], Expected]] = [
    # --- sizing from demand
    ("nothing to do", Cfg(), 0, (), (0, (), 0)),
    ("queued inputs start one container each", Cfg(), 3, (), (3, (), 3)),
    ("capped by max_containers", Cfg(max_containers=2), 3, (), (2, (), 2)),
    ("max_containers=None is unbounded", Cfg(), 500, (), (500, (), 500)),
    ("min_containers with no demand", Cfg(min_containers=2), 0, (), (2, (), 2)),
    ("min_containers above demand", Cfg(min_containers=2), 1, (), (2, (), 2)),
    ("demand above min_containers", Cfg(min_containers=2), 5, (), (5, (), 5)),
    ("min == max", Cfg(min_containers=3, max_containers=3), 10, (), (3, (), 3)),
    ("target_inputs rounds up", Cfg(target_inputs=4, max_inputs=4), 5, (), (2, (), 2)),
    ("target_inputs exact", Cfg(target_inputs=4, max_inputs=4), 8, (), (2, (), 2)),
    ("target_inputs one input", Cfg(target_inputs=4, max_inputs=8), 1, (), (1, (), 1)),
    ("inflight counts as demand", Cfg(), 0, (busy("b1"), busy("b2")), (0, (), 2)),
    ("queued plus inflight", Cfg(), 2, (busy("b1"), busy("b2")), (2, (), 4)),
    (
        "inflight over target_inputs",
        Cfg(target_inputs=4, max_inputs=4),
        3,
        (busy("b1", 3), busy("b2", 3)),
        (1, (), 3),
    ),
    ("STARTING counts as live", Cfg(), 2, (starting("s1"),), (1, (), 2)),
    ("STARTING already enough", Cfg(), 2, (starting("s1"), starting("s2")), (0, (), 2)),
    ("STOPPING is not live and its inflight is not demand", Cfg(), 1, (stopping("x", 1),), (1, (), 1)),
    ("STOPPED is not live", Cfg(), 1, (stopped("x"),), (1, (), 1)),
    # --- buffer_containers
    ("buffer while there is demand", Cfg(buffer_containers=2), 1, (), (3, (), 3)),
    ("no buffer without demand", Cfg(buffer_containers=2), 0, (), (0, (), 0)),
    ("no buffer without demand, min holds", Cfg(buffer_containers=2, min_containers=1), 0, (), (1, (), 1)),
    ("buffer on top of min when busy", Cfg(buffer_containers=1, min_containers=3), 1, (), (3, (), 3)),
    ("buffer capped by max", Cfg(buffer_containers=2, max_containers=4), 3, (), (4, (), 4)),
    ("buffer counts busy demand", Cfg(buffer_containers=1), 0, (busy("b1"), busy("b2")), (1, (), 3)),
    # --- scale-up ignores idle age
    ("scale up next to a stale idle one", Cfg(), 2, (idle("a", 0.0),), (1, (), 2)),
    ("live == desired keeps a stale idle one", Cfg(), 1, (busy("b"), idle("a", 0.0)), (0, (), 2)),
    # --- scale-down only after the window
    ("idle inside the window stays", Cfg(), 0, (idle("a", NOW - 30),), (0, (), 0)),
    ("idle one tick short of the window stays", Cfg(), 0, (idle("a", NOW - W + 0.1),), (0, (), 0)),
    ("idle exactly the window stops", Cfg(), 0, (idle("a", NOW - W),), (0, ("a",), 0)),
    ("idle past the window stops", Cfg(), 0, (idle("a", NOW - 500),), (0, ("a",), 0)),
    ("window 0 stops at once", Cfg(scaledown_window=0), 0, (idle("a", NOW),), (0, ("a",), 0)),
    ("custom window", Cfg(scaledown_window=5), 0, (idle("a", NOW - 5), idle("b", NOW - 4)), (0, ("a",), 0)),
    ("IDLE without idle_since is not aged", Cfg(), 0, (idle("a", None),), (0, (), 0)),
    ("idle from the future is not aged", Cfg(), 0, (idle("a", NOW + 10),), (0, (), 0)),
    (
        "IDLE with inflight is never stopped",
        Cfg(),
        0,
        (ContainerView("a", ContainerState.IDLE, 1, 0.0, 0.0), idle("b", 0.0)),
        (0, ("b",), 1),
    ),
    (
        "longest idle first, only the aged ones",
        Cfg(),
        0,
        (busy("x"), busy("y"), idle("a", NOW - 50), idle("b", NOW - 90), idle("c", NOW - 70)),
        (0, ("b", "c"), 2),
    ),
    (
        "at most live - desired",
        Cfg(min_containers=2),
        0,
        (idle("a", 0.0), idle("b", 5.0), idle("c", 10.0)),
        (0, ("a",), 2),
    ),
    (
        "ties broken by started_at, then id",
        Cfg(),
        0,
        (idle("z", 0.0, started_at=5.0), idle("y", 0.0, started_at=1.0), idle("x", 0.0, started_at=5.0)),
        (0, ("y", "x", "z"), 0),
    ),
    ("never below min_containers", Cfg(min_containers=1), 0, (idle("a", 0.0),), (0, (), 1)),
    ("min 1, two idle: stop one", Cfg(min_containers=1), 0, (idle("a", 0.0), idle("b", 1.0)), (0, ("a",), 1)),
    ("never stop BUSY or STARTING", Cfg(), 0, (starting("s"), busy("b")), (0, (), 1)),
    ("excess STARTING is left to finish", Cfg(), 0, (starting("s1"), starting("s2")), (0, (), 0)),
    ("STOPPING does not count toward the excess", Cfg(), 0, (stopping("x"), idle("a", 0.0)), (0, ("a",), 0)),
    # --- max_containers lowered at runtime: the excess over max goes at once
    (
        "over max: excess idle stops without waiting",
        Cfg(max_containers=2),
        0,
        (idle("a", NOW - 1), idle("b", NOW - 3), idle("c", NOW - 2), idle("d", NOW - 4)),
        (0, ("d", "b"), 0),
    ),
    (
        "over max: then only aged ones",
        Cfg(max_containers=1),
        0,
        (idle("a", 0.0), idle("b", NOW - 5), idle("c", NOW - 4)),
        (0, ("a", "b"), 0),
    ),
    (
        "over max: busy ones are never stopped",
        Cfg(max_containers=2),
        0,
        (busy("b1"), busy("b2"), busy("b3"), idle("i", NOW - 1)),
        (0, ("i",), 2),
    ),
    (
        "over max with queued work stops only the excess",
        Cfg(max_containers=2),
        5,
        (idle("a", NOW - 1), idle("b", NOW - 2), idle("c", NOW - 3)),
        (0, ("c",), 2),
    ),
    (
        "max 0 pauses: idle ones go at once, nothing starts",
        Cfg(max_containers=0),
        4,
        (idle("a", NOW), idle("b", None)),
        (0, ("a", "b"), 0),
    ),
    (
        "over max: IDLE without idle_since counts as idle since now",
        Cfg(max_containers=1),
        0,
        (idle("a", None), idle("b", NOW - 1)),
        (0, ("b",), 0),
    ),
]


@pytest.mark.parametrize(
    ("config", "queued", "containers", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISIONS],
)
def test_decide(
    config: AutoscalerConfig,
    queued: int,
    containers: tuple[ContainerView, ...],
    expected: tuple[int, tuple[str, ...], int],
) -> None:
    assert decide(config, PoolView(queued, containers), NOW) == ScaleDecision(*expected)


def test_decide_is_pure() -> None:
    pool = PoolView(1, (idle("a", 0.0), busy("b")))
    assert decide(Cfg(), pool, NOW) == decide(Cfg(), pool, NOW)
    assert pool == PoolView(1, (idle("a", 0.0), busy("b")))


def test_live_states() -> None:
    assert {ContainerState.STARTING, ContainerState.IDLE, ContainerState.BUSY} == LIVE_STATES


_views = st.builds(
    ContainerView,
    id=st.text("abcdef", min_size=1, max_size=3),
    state=st.sampled_from(ContainerState),
    inflight=st.integers(0, 5),
    idle_since=st.none() | st.floats(0, 2 * NOW),
    started_at=st.floats(0, NOW),
)
@st.composite
def _configs(draw: st.DrawFn) -> AutoscalerConfig:
    min_containers = draw(st.integers(0, 3))
    target_inputs = draw(st.integers(1, 3))
    return AutoscalerConfig(
        min_containers=min_containers,
        max_containers=draw(st.none() | st.integers(min_containers, 8)),
        buffer_containers=draw(st.integers(0, 2)),
        scaledown_window=draw(st.floats(0, 300)),
        target_inputs=target_inputs,
        max_inputs=draw(st.integers(target_inputs, 6)),
    )


@settings(max_examples=300, deadline=None)
@given(
    config=_configs(),
    queued=st.integers(0, 20),
    views=st.lists(_views, max_size=8, unique_by=lambda v: v.id),
)
def test_decide_invariants(
    config: AutoscalerConfig, queued: int, views: list[ContainerView]
) -> None:
    pool = PoolView(queued, tuple(views))
    d = decide(config, pool, NOW)
    live = [c for c in views if c.state in LIVE_STATES]
    by_id = {c.id: c for c in views}
    assert d.start == 0 or d.stop == ()  # never both ways at once
    assert d.start == max(0, d.desired - len(live))
    assert len(live) - len(d.stop) >= min(d.desired, len(live))  # never below desired (so min)
    assert len(set(d.stop)) == len(d.stop)
    for cid in d.stop:
        c = by_id[cid]
        assert c.state is ContainerState.IDLE and c.inflight == 0
    if config.max_containers is not None:
        assert d.desired <= config.max_containers
        within_max = len(live) <= config.max_containers
    else:
        within_max = True
    if within_max:  # only the window lets a container go
        for cid in d.stop:
            since = by_id[cid].idle_since
            assert since is not None and NOW - since >= config.scaledown_window
    assert config.min_containers <= d.desired


# --- config validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_containers": -1}, "min_containers=-1 must be a whole number >= 0"),
        ({"min_containers": 1.5}, "min_containers=1.5 must be a whole number"),
        ({"min_containers": True}, "min_containers=True"),
        ({"buffer_containers": -2}, "buffer_containers=-2 must be a whole number >= 0"),
        ({"target_inputs": 0}, "target_inputs=0 must be a whole number >= 1"),
        ({"target_inputs": 4, "max_inputs": 2}, "max_inputs=2 must be a whole number >= target_inputs=4"),
        ({"min_containers": 3, "max_containers": 2}, "max_containers=2 must be .* >= min_containers=3"),
        ({"max_containers": -1}, "max_containers=-1"),
        ({"scaledown_window": -1.0}, "scaledown_window=-1.0 must be a number of seconds >= 0"),
        ({"scaledown_window": math.nan}, "scaledown_window=nan"),
        ({"scaledown_window": math.inf}, "scaledown_window=inf"),
        ({"scaledown_window": "60"}, "scaledown_window='60'"),
        ({"scaledown_window": False}, "scaledown_window=False"),
    ],
)
def test_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidError, match=message.replace("[", r"\[")):
        AutoscalerConfig(**kwargs)  # type: ignore[arg-type]


def test_config_accepts_edges() -> None:
    assert AutoscalerConfig(
        min_containers=2, max_containers=2, scaledown_window=0, target_inputs=3, max_inputs=3
    )
    assert AutoscalerConfig(max_containers=0).max_containers == 0
    assert AutoscalerConfig(scaledown_window=30).scaledown_window == 30


# --- simulator: mechanics -------------------------------------------------------------------------


def test_simulate_one_input() -> None:
    r = simulate(Cfg(scaledown_window=1.0), [(0.0, 0.5)], start_latency=0.2)
    assert (r.scale_ups, r.scale_downs, r.completed) == (1, 1, 1)
    assert r.mean_wait == pytest.approx(0.2)
    assert r.p99_wait == pytest.approx(0.2)
    # started at 0.0, busy 0.2..0.7, idle for the 1 s window, stopped at 1.7
    assert r.container_seconds == pytest.approx(1.7)
    t, live, busy_, queued = r.samples[0]
    assert (t, live, busy_, queued) == (0.0, 1, 0, 1)
    assert r.samples[-1][1] == 0
    assert r.samples[-1][0] == pytest.approx(1.7)


def test_simulate_empty_trace() -> None:
    r = simulate(Cfg(), [], start_latency=1.0)
    assert r == SimulationResult([(0.0, 0, 0, 0)], 0, 0, 0.0, 0.0, 0.0, 0)


def test_simulate_empty_trace_keeps_min_containers() -> None:
    r = simulate(Cfg(min_containers=2), [], start_latency=1.0, until=5.0)
    assert r.scale_ups == 2 and r.scale_downs == 0
    assert {s[1] for s in r.samples} == {2}
    assert r.container_seconds == pytest.approx(2 * 5.0)


def test_simulate_zero_latency_serves_in_the_same_tick() -> None:
    r = simulate(Cfg(scaledown_window=0), [(0.0, 1.0), (0.0, 1.0)], start_latency=0.0)
    assert r.mean_wait == 0.0 and r.p99_wait == 0.0
    assert r.samples[0] == (0.0, 2, 2, 0)
    assert r.completed == 2


def test_simulate_until_cuts_the_run() -> None:
    r = simulate(Cfg(), [(0.0, 100.0)], start_latency=0.0, until=2.0)
    assert r.completed == 0
    assert r.samples[-1][0] == pytest.approx(2.0)
    assert r.container_seconds == pytest.approx(2.0)


def test_simulate_until_before_start() -> None:
    assert simulate(Cfg(), [(0.0, 1.0)], start_latency=0.0, until=-1.0).samples == []


def test_simulate_max_containers_zero_needs_until() -> None:
    with pytest.raises(InvalidError, match="max_containers=0"):
        simulate(Cfg(max_containers=0), [(0.0, 1.0)], start_latency=0.0)
    r = simulate(Cfg(max_containers=0), [(0.0, 1.0)], start_latency=0.0, until=1.0)
    assert r.completed == 0 and r.samples[-1] == (1.0, 0, 0, 1)


@pytest.mark.parametrize("tick", [0.0, -0.1])
def test_simulate_rejects_tick(tick: float) -> None:
    with pytest.raises(InvalidError, match=f"tick={tick}"):
        simulate(Cfg(), [], start_latency=0.0, tick=tick)


def test_simulate_queue_is_fifo() -> None:
    # One container, three inputs: they run in arrival order, so the waits are 0, 1, 2 s.
    r = simulate(Cfg(max_containers=1), [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)], start_latency=0.0, tick=0.5)
    assert r.completed == 3
    assert r.mean_wait == pytest.approx(1.0)
    assert r.p99_wait == pytest.approx(2.0)


def test_simulate_packs_to_target_before_spreading() -> None:
    # Two warm containers, target 2: both inputs go to the same one, the other stays idle.
    cfg = Cfg(min_containers=2, target_inputs=2, max_inputs=2)
    r = simulate(cfg, [(1.0, 5.0), (1.0, 5.0)], start_latency=0.0, until=2.0)
    assert r.samples[10] == (1.0, 2, 1, 0)


def test_simulate_overflow_past_target_up_to_max_inputs() -> None:
    # max_containers=1 caps the pool; max_inputs=3 lets that container take all three inputs.
    cfg = Cfg(max_containers=1, target_inputs=1, max_inputs=3)
    r = simulate(cfg, [(0.0, 1.0)] * 4, start_latency=0.0)
    assert r.samples[0] == (0.0, 1, 1, 1)
    assert r.completed == 4


def test_simulate_sorts_arrivals() -> None:
    trace = [(2.0, 1.0), (0.0, 1.0), (1.0, 1.0)]
    assert simulate(Cfg(), trace, start_latency=0.5) == simulate(Cfg(), sorted(trace), start_latency=0.5)


def test_simulate_is_deterministic() -> None:
    trace = poisson_trace(5.0, 30.0, 1.0, seed=3)
    assert simulate(Cfg(), trace, start_latency=1.0) == simulate(Cfg(), trace, start_latency=1.0)


def test_poisson_trace() -> None:
    trace = poisson_trace(10.0, 100.0, 0.5, seed=1, start=50.0)
    assert trace == poisson_trace(10.0, 100.0, 0.5, seed=1, start=50.0)
    assert trace != poisson_trace(10.0, 100.0, 0.5, seed=2, start=50.0)
    times = [t for t, _ in trace]
    assert times == sorted(times) and 50.0 < times[0] and times[-1] < 150.0
    assert len(trace) == pytest.approx(1000, rel=0.1)
    assert sum(s for _, s in trace) / len(trace) == pytest.approx(0.5, rel=0.1)


# --- simulator: the no-flapping property ---------------------------------------------------------

LOAD_SECONDS = 300.0
WINDOW = 60.0
TICK = 0.1


def _scale_downs_until(r: SimulationResult, end: float) -> int:
    downs, prev = 0, 0
    for t, live, _, _ in r.samples:
        if t > end:
            break
        downs += max(0, prev - live)
        prev = live
    return downs


def _last_busy(r: SimulationResult) -> float:
    return max(t for t, _, busy_, queued in r.samples if busy_ or queued)


def _after_first_start(r: SimulationResult, end: float) -> list[int]:
    first = next(i for i, s in enumerate(r.samples) if s[1] > 0)
    return [live for t, live, _, _ in r.samples[first:] if t <= end]


def _periodic(interval: float, service: float, duration: float) -> list[tuple[float, float]]:
    return [(i * interval, service) for i in range(int(duration / interval))]


# Loads sized for 2 containers: mean demand 1.2x target_inputs, so ceil() asks for 2, with
# enough concurrency per container that Poisson peaks rarely cross into a 3rd (and never a
# 4th). With target_inputs=1, Poisson peaks alone make the live count track the trailing
# window's peak demand (see test_unit_target_follows_peaks), so that case uses a periodic load.
STEADY_LOADS = [
    pytest.param(
        Cfg(scaledown_window=WINDOW, target_inputs=30, max_inputs=30),
        poisson_trace(36.0, LOAD_SECONDS, 1.0, seed=seed),
        1.0,
        id=f"poisson-36/s-target30-seed{seed}",
    )
    for seed in range(5)
] + [
    pytest.param(
        Cfg(scaledown_window=WINDOW, target_inputs=50, max_inputs=60),
        poisson_trace(60.0, LOAD_SECONDS, 1.0, seed=11),
        1.0,
        id="poisson-60/s-target50-max60",
    ),
    # The backlog that builds during the first cold start is served by extra containers
    # (see test_cold_start_backlog_overshoots_once), so this one uses a 0.4 s start.
    pytest.param(
        Cfg(scaledown_window=WINDOW),
        _periodic(0.5, 0.9, LOAD_SECONDS),
        0.4,
        id="periodic-2/s-target1",
    ),
]


@pytest.mark.parametrize(("config", "trace", "start_latency"), STEADY_LOADS)
def test_steady_load_does_not_flap(
    config: AutoscalerConfig, trace: list[tuple[float, float]], start_latency: float
) -> None:
    r = simulate(config, trace, start_latency=start_latency, tick=TICK)
    lives = _after_first_start(r, LOAD_SECONDS)
    assert 1 <= min(lives) and max(lives) <= 3  # within ±1 of 2
    assert _scale_downs_until(r, LOAD_SECONDS) <= 1
    assert r.completed == len(trace)
    # after the load: back to zero one scaledown_window after the last input finished
    last_busy = _last_busy(r)
    zero_at = next(t for t, live, _, _ in r.samples if t > last_busy and live == 0)
    assert last_busy + WINDOW < zero_at <= last_busy + WINDOW + 2 * TICK + 1e-9
    assert r.samples[-1][1] == 0


def test_after_the_load_min_containers_stay() -> None:
    config = Cfg(min_containers=1, scaledown_window=WINDOW, target_inputs=30, max_inputs=30)
    trace = poisson_trace(36.0, 120.0, 1.0, seed=0)
    r = simulate(config, trace, start_latency=1.0, tick=TICK, until=120.0 + 3 * WINDOW)
    assert min(live for _, live, _, _ in r.samples) == 1  # from t=0, never below min
    settled = _last_busy(r) + WINDOW + 2 * TICK
    assert {live for t, live, _, _ in r.samples if t > settled} == {1}


def test_unit_target_follows_peaks() -> None:
    # The same 1.2-containers-of-work Poisson load with target_inputs=1 (and a 1 s mean
    # service) is not steady at the scale of one container: the live count follows the
    # peak concurrent demand of the last window, and peaks come and go.
    trace = poisson_trace(1.2, LOAD_SECONDS, 1.0, seed=0)
    r = simulate(Cfg(scaledown_window=WINDOW), trace, start_latency=1.0)
    lives = _after_first_start(r, LOAD_SECONDS)
    assert max(lives) > 3
    assert _scale_downs_until(r, LOAD_SECONDS) > 1


def test_cold_start_backlog_overshoots_once() -> None:
    # 2 inputs/s of 0.9 s each need 2 containers, but 1 s cold starts let a backlog build
    # first: demand peaks at 4 while the first containers start. The surplus is stopped
    # once, one window later, and the pool then holds steady at 2.
    r = simulate(Cfg(scaledown_window=WINDOW), _periodic(0.5, 0.9, LOAD_SECONDS), start_latency=1.0)
    lives = _after_first_start(r, LOAD_SECONDS)
    assert max(lives) == 4
    assert _scale_downs_until(r, LOAD_SECONDS) == 2
    assert {live for t, live, _, _ in r.samples if WINDOW + 5 <= t <= LOAD_SECONDS} == {2}


def test_scale_up_is_immediate_and_down_waits() -> None:
    # A burst of 10 inputs at t=10 on a warm pool of 1: 9 containers start in that tick,
    # none stops until WINDOW after each went idle.
    trace = [(10.0, 2.0)] * 10
    r = simulate(Cfg(min_containers=1, scaledown_window=WINDOW), trace, start_latency=1.0)
    at_burst = next(s for s in r.samples if s[0] >= 10.0)
    assert at_burst[1] == 10
    # the first container went idle at 12.0, the nine others at 13.0
    assert all(live == 10 for t, live, _, _ in r.samples if 10.0 <= t < 12.0 + WINDOW - TICK / 2)
    assert next(live for t, live, _, _ in r.samples if t >= 12.0 + WINDOW - TICK / 2) == 9
    assert r.samples[-1][1] == 1
    assert r.scale_downs == 9


def test_doctests() -> None:
    assert doctest.testmod(surge.core.autoscaler).failed == 0


# --- sizing by measured run time -------------------------------------------------------------------

@pytest.mark.parametrize(("queued", "mean_runtime", "target", "expected"), [
    (20_000, None, 1, 20_000),     # unknown speed: one container per input (capped by max, not here)
    (20_000, 0.0001, 1, 2),        # 2 s of work, drained in 1 s by 2 containers
    (20_000, 0.0, 1, 1),           # instant: still one container while there is work
    (1_000, 0.01, 1, 10),
    (20, 1.0, 1, 20),              # slow functions: never more than one per input
    (20, 5.0, 1, 20),
    (40, 0.5, 4, 5),               # 20 s of work → 20 slots → 5 containers of 4
    (0, 0.01, 1, 0),
])
def test_desired_sized_by_work(queued: int, mean_runtime: float | None, target: int, expected: int) -> None:
    config = AutoscalerConfig(target_inputs=target, max_inputs=target)
    d = decide(config, PoolView(queued=queued, containers=(), mean_runtime=mean_runtime), now=0.0)
    assert d.desired == expected and d.start == expected


def test_queue_drain_seconds_changes_the_size() -> None:
    slow_drain = AutoscalerConfig(queue_drain_seconds=4.0)
    d = decide(slow_drain, PoolView(queued=1_000, containers=(), mean_runtime=0.01), now=0.0)
    assert d.desired == 3                                   # 10 s of work over 4 s


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), True, "1"])
def test_queue_drain_seconds_validated(bad: object) -> None:
    with pytest.raises(InvalidError, match="queue_drain_seconds"):
        AutoscalerConfig(queue_drain_seconds=bad)  # type: ignore[arg-type]

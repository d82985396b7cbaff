"""Per-function autoscaling: one pure decision, and a simulator that replays it over a trace.

``decide`` looks at one function's pool (queued inputs and its containers) at time ``now`` and
says how many containers to start and which to stop. Like Ray Serve's autoscaling policy it
keeps no state of its own: the only memory is each container's ``idle_since``, so the control
loop can crash and restart without changing what it decides.

The policy is asymmetric on purpose. Scale-ups happen at once (a queued input is a user
waiting), scale-downs only once a container has been idle for ``scaledown_window`` seconds.
A burst therefore adds containers quickly, and the short lulls between inputs under steady
load never remove them: that asymmetry is what keeps the pool from flapping.

>>> cfg = AutoscalerConfig(max_containers=4, scaledown_window=60)
>>> decide(cfg, PoolView(queued=3, containers=()), now=0.0)
ScaleDecision(start=3, stop=(), desired=3)

``simulate`` runs ``decide`` every ``tick`` seconds against a trace of arrivals, faster than
real time and deterministically, to size configs and to check the no-flapping property.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from surge.core.models import ContainerState
from surge.errors import InvalidError

__all__ = [
    "LIVE_STATES",
    "AutoscalerConfig",
    "ContainerView",
    "PoolView",
    "ScaleDecision",
    "SimulationResult",
    "decide",
    "poisson_trace",
    "simulate",
]

# STOPPING containers are already on their way out: they neither count as capacity nor
# block a replacement from starting.
LIVE_STATES = frozenset({ContainerState.STARTING, ContainerState.IDLE, ContainerState.BUSY})


@dataclass(frozen=True)
class AutoscalerConfig:
    """One function's scaling options (same names and meanings as Modal's)."""

    min_containers: int = 0
    max_containers: int | None = None
    buffer_containers: int = 0
    scaledown_window: float = 60.0
    target_inputs: int = 1
    max_inputs: int = 1
    queue_drain_seconds: float = 1.0   # with known run times: size for draining the backlog this fast

    def __post_init__(self) -> None:
        _check_int("min_containers", self.min_containers, 0)
        _check_int("buffer_containers", self.buffer_containers, 0)
        _check_int("target_inputs", self.target_inputs, 1)
        # A container must hold the inputs the autoscaler sizes it for.
        _check_int("max_inputs", self.max_inputs, self.target_inputs, "target_inputs")
        if self.max_containers is not None:
            _check_int("max_containers", self.max_containers, self.min_containers, "min_containers")
        window = self.scaledown_window
        if isinstance(window, bool) or not isinstance(window, int | float) or not 0 <= window < math.inf:
            raise InvalidError(f"scaledown_window={window!r} must be a number of seconds >= 0")
        drain = self.queue_drain_seconds
        if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 < drain < math.inf:
            raise InvalidError(f"queue_drain_seconds={drain!r} must be a number of seconds > 0")


def _check_int(name: str, value: object, lowest: int, lowest_name: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        bound = f"{lowest_name}={lowest}" if lowest_name else str(lowest)
        raise InvalidError(f"{name}={value!r} must be a whole number >= {bound}")


@dataclass(frozen=True)
class ContainerView:
    """What the autoscaler needs to know about one container."""

    id: str
    state: ContainerState
    inflight: int
    idle_since: float | None  # when it last became idle; None if it is not idle
    started_at: float


@dataclass(frozen=True)
class PoolView:
    """One function's pool: inputs waiting for a container, and its containers."""

    queued: int
    containers: tuple[ContainerView, ...]
    mean_runtime: float | None = None   # seconds per input, once measured


@dataclass(frozen=True)
class ScaleDecision:
    """``start`` new containers, ``stop`` these ids; ``desired`` is the target live count."""

    start: int
    stop: tuple[str, ...]
    desired: int


def _slots(config: AutoscalerConfig, demand: int, mean_runtime: float | None) -> int:
    """Inputs that should be running at once. Without a measured run time: one per input (scale
    to the backlog). With one: enough to finish the backlog within ``queue_drain_seconds`` — a
    20,000-input map of a 0.1 ms function needs one container, not one per input (each extra
    container costs a cold start and, on a small node, CPU the work itself needs)."""
    if mean_runtime is None or demand == 0:
        return demand
    by_work = math.ceil(demand * mean_runtime / config.queue_drain_seconds)
    return max(1, min(demand, by_work))


def _desired(config: AutoscalerConfig, demand: int, mean_runtime: float | None = None) -> int:
    slots = _slots(config, demand, mean_runtime)
    active = -(-slots // config.target_inputs)  # ceil without floats
    desired = max(active + (config.buffer_containers if demand > 0 else 0), config.min_containers)
    return desired if config.max_containers is None else min(desired, config.max_containers)


def decide(config: AutoscalerConfig, pool: PoolView, now: float) -> ScaleDecision:
    """Decide how many containers to start and which idle ones to stop.

    demand = queued + inflight on live containers (a draining STOPPING container finishes its
    own inputs, so they need no new capacity). desired = ceil(demand / target_inputs), plus
    ``buffer_containers`` while there is demand (with a measured ``mean_runtime``, demand is
    sized by work instead: see ``_slots``), at least ``min_containers``, at most
    ``max_containers``. Only IDLE containers with nothing in flight are ever stopped, longest
    idle first: those idle for ``scaledown_window``, or, when the live count is above
    ``max_containers`` (lowered at runtime), the excess over it at once.
    """
    live = [c for c in pool.containers if c.state in LIVE_STATES]
    demand = pool.queued + sum(c.inflight for c in live)
    desired = _desired(config, demand, pool.mean_runtime)
    if len(live) <= desired:
        return ScaleDecision(start=desired - len(live), stop=(), desired=desired)

    over_max = 0 if config.max_containers is None else max(0, len(live) - config.max_containers)
    idle = sorted(
        (c for c in live if c.state is ContainerState.IDLE and c.inflight == 0),
        # An IDLE container without idle_since has just become idle as far as we know.
        key=lambda c: (now if c.idle_since is None else c.idle_since, c.started_at, c.id),
    )
    stop: list[str] = []
    for c in idle:
        if len(stop) == len(live) - desired:
            break
        waited = c.idle_since is not None and now - c.idle_since >= config.scaledown_window
        if waited or len(stop) < over_max:
            stop.append(c.id)
    return ScaleDecision(start=0, stop=tuple(stop), desired=desired)


# --------------------------------------------------------------------------- simulator


@dataclass(frozen=True)
class SimulationResult:
    """What ``simulate`` saw.

    ``samples`` holds one ``(t, live, busy, queued)`` per tick, taken after that tick's
    decision. ``scale_ups`` / ``scale_downs`` count containers started / stopped.
    Queue waits are over the inputs that started before the end of the run.
    """

    samples: list[tuple[float, int, int, int]]
    scale_ups: int
    scale_downs: int
    container_seconds: float
    mean_wait: float
    p99_wait: float
    completed: int


class _Container:
    __slots__ = ("active_at", "id", "idle_since", "jobs", "ready_at", "started_at", "state")

    def __init__(self, cid: str, now: float, start_latency: float) -> None:
        self.id = cid
        self.started_at = now
        self.ready_at = now + start_latency
        self.state = ContainerState.STARTING
        self.idle_since: float | None = None
        self.active_at = now  # last time it took an input or became ready
        self.jobs: list[float] = []  # end times of the inputs it runs

    def view(self) -> ContainerView:
        return ContainerView(self.id, self.state, len(self.jobs), self.idle_since, self.started_at)


def _advance(pool: list[_Container], now: float) -> int:
    """Finish inputs and cold starts due by ``now``; return how many inputs finished."""
    done = 0
    for c in pool:
        if c.state is ContainerState.STARTING and c.ready_at <= now:
            c.state, c.idle_since, c.active_at = ContainerState.IDLE, c.ready_at, c.ready_at
        finished = [end for end in c.jobs if end <= now]
        if finished:
            done += len(finished)
            c.jobs = [end for end in c.jobs if end > now]
            if not c.jobs:
                c.state, c.idle_since = ContainerState.IDLE, max(finished)
    return done


def _dispatch_order(config: AutoscalerConfig, c: _Container) -> tuple[int, float, float, str]:
    # Fill containers up to target_inputs, most loaded and most recently active first, so
    # surplus containers go idle and become the ones the autoscaler stops. Past the target,
    # spread the overflow (least loaded first) up to max_inputs.
    n = len(c.jobs)
    if n < config.target_inputs:
        return (0, -n, -c.active_at, c.id)
    return (1, n, -c.active_at, c.id)


def _dispatch(
    config: AutoscalerConfig,
    pool: list[_Container],
    queue: deque[tuple[float, float]],
    now: float,
    waits: list[float],
) -> None:
    while queue:
        ready = [
            c for c in pool if c.state is not ContainerState.STARTING and len(c.jobs) < config.max_inputs
        ]
        if not ready:
            return
        c = min(ready, key=lambda c: _dispatch_order(config, c))
        arrived, service = queue.popleft()
        waits.append(now - arrived)
        c.jobs.append(now + service)
        c.state, c.idle_since, c.active_at = ContainerState.BUSY, None, now


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest-rank percentile


def simulate(
    config: AutoscalerConfig,
    arrivals: Sequence[tuple[float, float]],
    *,
    start_latency: float,
    tick: float = 0.1,
    until: float | None = None,
) -> SimulationResult:
    """Replay ``decide`` over ``(arrival_time, service_seconds)`` pairs, one decision a tick.

    Each tick: finish due inputs and cold starts, enqueue arrivals (FIFO), hand queued inputs
    to ready containers (up to ``max_inputs`` each), run ``decide`` and apply it, then hand
    out again (a zero ``start_latency`` container serves in the tick it was started). Without
    ``until`` the run ends once every input has finished and the pool is back to its resting
    size (``min_containers``, capped by ``max_containers``).

    >>> r = simulate(AutoscalerConfig(scaledown_window=1.0), [(0.0, 0.5)], start_latency=0.2)
    >>> r.scale_ups, r.scale_downs, r.completed, round(r.mean_wait, 6)
    (1, 1, 1, 0.2)
    """
    if tick <= 0:
        raise InvalidError(f"tick={tick} must be > 0 seconds")
    if until is None and arrivals and config.max_containers == 0:
        raise InvalidError("max_containers=0 never serves an input; pass until= to bound the run")
    pending = deque(sorted(arrivals))
    queue: deque[tuple[float, float]] = deque()
    pool: list[_Container] = []
    waits: list[float] = []
    samples: list[tuple[float, int, int, int]] = []
    scale_ups = scale_downs = completed = 0
    container_seconds = 0.0
    resting = _desired(config, 0)
    step = 0
    while True:
        now = step * tick  # multiply, do not accumulate, so long runs do not drift
        if until is not None and now > until:
            break
        completed += _advance(pool, now)
        while pending and pending[0][0] <= now:
            queue.append(pending.popleft())
        _dispatch(config, pool, queue, now, waits)
        decision = decide(config, PoolView(len(queue), tuple(c.view() for c in pool)), now)
        for _ in range(decision.start):
            scale_ups += 1
            pool.append(_Container(f"c{scale_ups}", now, start_latency))
        stopped = set(decision.stop)
        for c in pool:
            if c.id in stopped:
                container_seconds += now - c.started_at
        pool = [c for c in pool if c.id not in stopped]
        scale_downs += len(stopped)
        _advance(pool, now)  # only zero-latency starts can change here; nothing else is due
        _dispatch(config, pool, queue, now, waits)
        busy = sum(1 for c in pool if c.jobs)
        samples.append((now, len(pool), busy, len(queue)))
        if until is None and not pending and not queue and busy == 0 and len(pool) == resting:
            break
        step += 1
    end = samples[-1][0] if samples else 0.0
    container_seconds += sum(end - c.started_at for c in pool)
    return SimulationResult(
        samples=samples,
        scale_ups=scale_ups,
        scale_downs=scale_downs,
        container_seconds=container_seconds,
        mean_wait=sum(waits) / len(waits) if waits else 0.0,
        p99_wait=_p99(waits),
        completed=completed,
    )


def poisson_trace(
    rate: float, duration: float, service_seconds: float, *, seed: int, start: float = 0.0
) -> list[tuple[float, float]]:
    """A deterministic Poisson arrival trace: ``rate`` inputs/s for ``duration`` seconds.

    Service times are exponential with mean ``service_seconds`` (pass a seed to vary them).

    >>> len(poisson_trace(2.0, 10.0, 1.0, seed=7)) > 0
    True
    """
    rng = random.Random(seed)
    trace: list[tuple[float, float]] = []
    t = start + rng.expovariate(rate)
    while t < start + duration:
        trace.append((t, rng.expovariate(1.0 / service_seconds)))
        t += rng.expovariate(rate)
    return trace

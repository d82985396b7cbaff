"""The input and container state machines, as explicit transition tables.

Every state change the store makes is checked against these tables, and the conditional
updates it issues (``... WHERE state IN (...)``) take their source sets from
``predecessors``, so the tables are the single statement of what may happen.

Inputs::

    QUEUED ──▶ RUNNING ──▶ SUCCEEDED | FAILED | CANCELLED | TIMED_OUT
      │  ▲        │
      │  └────────┘ retry (user retry or WORKER_LOST)
      └──▶ CANCELLED | EXPIRED | FAILED (NO_CAPACITY)

Containers::

    STARTING ──▶ IDLE ◀──▶ BUSY
        │          │        │
        └──────────┴────────┴──▶ STOPPING ──▶ STOPPED   (STOPPED also directly)

>>> can_transition(InputState.QUEUED, InputState.RUNNING)
True
>>> can_transition(InputState.SUCCEEDED, InputState.RUNNING)
False
"""

from __future__ import annotations

from typing import overload

from surge.core.models import ContainerState, InputState, TerminalReason

__all__ = [
    "CONTAINER_TRANSITIONS",
    "INPUT_TRANSITIONS",
    "can_transition",
    "predecessors",
    "terminal_state_for",
]

_I = InputState
_C = ContainerState

INPUT_TRANSITIONS: dict[InputState, frozenset[InputState]] = {
    # FAILED straight from QUEUED is NO_CAPACITY: no node can ever place it.
    _I.QUEUED: frozenset({_I.RUNNING, _I.CANCELLED, _I.EXPIRED, _I.FAILED}),
    # Back to QUEUED is a retry: the attempt number goes up.
    _I.RUNNING: frozenset({_I.QUEUED, _I.SUCCEEDED, _I.FAILED, _I.CANCELLED, _I.TIMED_OUT}),
    _I.SUCCEEDED: frozenset(),
    _I.FAILED: frozenset(),
    _I.CANCELLED: frozenset(),
    _I.TIMED_OUT: frozenset(),
    _I.EXPIRED: frozenset(),
}

CONTAINER_TRANSITIONS: dict[ContainerState, frozenset[ContainerState]] = {
    # STARTING -> STOPPED directly: the process died during imports or enter hooks.
    _C.STARTING: frozenset({_C.IDLE, _C.STOPPING, _C.STOPPED}),
    _C.IDLE: frozenset({_C.BUSY, _C.STOPPING, _C.STOPPED}),
    _C.BUSY: frozenset({_C.IDLE, _C.STOPPING, _C.STOPPED}),
    _C.STOPPING: frozenset({_C.STOPPED}),
    _C.STOPPED: frozenset(),
}


@overload
def can_transition(a: InputState, b: InputState) -> bool: ...
@overload
def can_transition(a: ContainerState, b: ContainerState) -> bool: ...
def can_transition(a: InputState | ContainerState, b: InputState | ContainerState) -> bool:
    """Whether ``a -> b`` is allowed (inputs and containers each use their own table).

    Staying in the same state is not a transition and is never allowed.
    """
    if isinstance(a, InputState) and isinstance(b, InputState):
        return b in INPUT_TRANSITIONS[a]
    if isinstance(a, ContainerState) and isinstance(b, ContainerState):
        return b in CONTAINER_TRANSITIONS[a]
    raise TypeError(f"cannot compare {type(a).__name__} {a} with {type(b).__name__} {b}")


@overload
def predecessors(state: InputState) -> frozenset[InputState]: ...
@overload
def predecessors(state: ContainerState) -> frozenset[ContainerState]: ...
def predecessors(state: InputState | ContainerState) -> frozenset[InputState] | frozenset[ContainerState]:
    """The states that may move to ``state``: the ``WHERE state IN (...)`` of its update.

    >>> sorted(predecessors(InputState.RUNNING))
    [<InputState.QUEUED: 'QUEUED'>]
    """
    if isinstance(state, InputState):
        return frozenset(a for a, targets in INPUT_TRANSITIONS.items() if state in targets)
    return frozenset(a for a, targets in CONTAINER_TRANSITIONS.items() if state in targets)


_STATE_FOR_REASON = {
    TerminalReason.TIMEOUT: InputState.TIMED_OUT,
    TerminalReason.CANCELLED: InputState.CANCELLED,
    TerminalReason.EXPIRED: InputState.EXPIRED,
}


def terminal_state_for(reason: TerminalReason) -> InputState:
    """The terminal state an input ends in for ``reason``; every other reason is FAILED.

    >>> terminal_state_for(TerminalReason.OOM_KILLED)
    <InputState.FAILED: 'FAILED'>
    """
    return _STATE_FOR_REASON.get(reason, InputState.FAILED)

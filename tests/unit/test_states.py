from __future__ import annotations

import doctest
import itertools

import pytest

import surge.core.states
from surge.core.models import ContainerState, InputState, TerminalReason
from surge.core.states import (
    CONTAINER_TRANSITIONS,
    INPUT_TRANSITIONS,
    can_transition,
    predecessors,
    terminal_state_for,
)

I = InputState  # noqa: E741 - short names keep the tables readable
C = ContainerState

ALLOWED_INPUT = {
    (I.QUEUED, I.RUNNING),
    (I.QUEUED, I.CANCELLED),
    (I.QUEUED, I.EXPIRED),
    (I.QUEUED, I.FAILED),  # NO_CAPACITY
    (I.RUNNING, I.QUEUED),  # retry
    (I.RUNNING, I.SUCCEEDED),
    (I.RUNNING, I.FAILED),
    (I.RUNNING, I.CANCELLED),
    (I.RUNNING, I.TIMED_OUT),
}

ALLOWED_CONTAINER = {
    (C.STARTING, C.IDLE),
    (C.STARTING, C.STOPPING),
    (C.STARTING, C.STOPPED),
    (C.IDLE, C.BUSY),
    (C.BUSY, C.IDLE),
    (C.IDLE, C.STOPPING),
    (C.IDLE, C.STOPPED),
    (C.BUSY, C.STOPPING),
    (C.BUSY, C.STOPPED),
    (C.STOPPING, C.STOPPED),
}


@pytest.mark.parametrize(("a", "b"), list(itertools.product(InputState, repeat=2)))
def test_input_transitions(a: InputState, b: InputState) -> None:
    assert can_transition(a, b) is ((a, b) in ALLOWED_INPUT)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(ContainerState, repeat=2)))
def test_container_transitions(a: ContainerState, b: ContainerState) -> None:
    assert can_transition(a, b) is ((a, b) in ALLOWED_CONTAINER)


def test_tables_cover_every_state() -> None:
    assert set(INPUT_TRANSITIONS) == set(InputState)
    assert set(CONTAINER_TRANSITIONS) == set(ContainerState)


@pytest.mark.parametrize("state", list(InputState))
def test_terminal_states_go_nowhere(state: InputState) -> None:
    assert (INPUT_TRANSITIONS[state] == frozenset()) is state.terminal


def test_stopped_is_final() -> None:
    assert [s for s, targets in CONTAINER_TRANSITIONS.items() if not targets] == [C.STOPPED]


@pytest.mark.parametrize(("a", "b"), [(I.QUEUED, C.IDLE), (C.IDLE, I.QUEUED), ("QUEUED", "RUNNING")])
def test_can_transition_refuses_mixed_kinds(a: object, b: object) -> None:
    with pytest.raises(TypeError, match="cannot compare"):
        can_transition(a, b)  # type: ignore[call-overload]


@pytest.mark.parametrize("state", list(InputState) + list(ContainerState))
def test_predecessors_mirror_the_tables(state: InputState | ContainerState) -> None:
    if isinstance(state, InputState):
        assert predecessors(state) == {a for a, targets in INPUT_TRANSITIONS.items() if state in targets}
    else:
        assert predecessors(state) == {a for a, targets in CONTAINER_TRANSITIONS.items() if state in targets}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (I.QUEUED, {I.RUNNING}),
        (I.RUNNING, {I.QUEUED}),
        (I.FAILED, {I.QUEUED, I.RUNNING}),
        (I.CANCELLED, {I.QUEUED, I.RUNNING}),
        (I.SUCCEEDED, {I.RUNNING}),
        (I.EXPIRED, {I.QUEUED}),
        (C.STARTING, set()),
        (C.STOPPED, {C.STARTING, C.IDLE, C.BUSY, C.STOPPING}),
        (C.IDLE, {C.STARTING, C.BUSY}),
    ],
)
def test_predecessors(state: InputState | ContainerState, expected: set[object]) -> None:
    assert set(predecessors(state)) == expected


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (TerminalReason.TIMEOUT, I.TIMED_OUT),
        (TerminalReason.CANCELLED, I.CANCELLED),
        (TerminalReason.EXPIRED, I.EXPIRED),
        (TerminalReason.USER_EXCEPTION, I.FAILED),
        (TerminalReason.OOM_KILLED, I.FAILED),
        (TerminalReason.EXITED, I.FAILED),
        (TerminalReason.SIGNALED, I.FAILED),
        (TerminalReason.WORKER_LOST, I.FAILED),
        (TerminalReason.INIT_FAILURE, I.FAILED),
        (TerminalReason.RESULT_TOO_LARGE, I.FAILED),
        (TerminalReason.NO_CAPACITY, I.FAILED),
    ],
)
def test_terminal_state_for(reason: TerminalReason, expected: InputState) -> None:
    assert terminal_state_for(reason) is expected


def test_terminal_state_for_covers_every_reason() -> None:
    for reason in TerminalReason:
        state = terminal_state_for(reason)
        assert state.terminal and state is not I.SUCCEEDED
        # every terminal state a reason leads to is reachable from RUNNING or QUEUED
        assert predecessors(state)


def test_doctests() -> None:
    assert doctest.testmod(surge.core.states).failed == 0

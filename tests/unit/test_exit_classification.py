"""How a container's end becomes its inputs' terminal reason (``server.dispatcher.classify_exit``)."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest

from surge.agent.agent import ExitInfo
from surge.core.models import TerminalReason
from surge.core.retries import INFRA_FAILURES
from surge.server.dispatcher import classify_exit

HANDLE = SimpleNamespace(spec=SimpleNamespace(memory_limit_mib=64))


def info(*, exit_code: int | None = None, sig: int | None = None, oom: bool = False,
         kill_reason: str | None = None) -> ExitInfo:
    return ExitInfo(exit_code=exit_code, signal=sig, oom_killed=oom, kill_reason=kill_reason, inflight={},
                    timed_out=set(), init_error=None)


@pytest.mark.parametrize(("exit_info", "reason"), [
    # surge stopped it: lost workers, evictions, shutdown
    (info(sig=signal.SIGKILL, kill_reason="LOST"), TerminalReason.WORKER_LOST),
    (info(sig=signal.SIGTERM, kill_reason="STOP"), TerminalReason.WORKER_LOST),
    # the cgroup's OOM killer (also a SIGKILL)
    (info(sig=signal.SIGKILL, oom=True), TerminalReason.OOM_KILLED),
    # a SIGKILL that is neither surge's nor an OOM kill: an operator, the host, node-level chaos
    (info(sig=signal.SIGKILL), TerminalReason.WORKER_LOST),
    # the program's own crashes stay the user's
    (info(sig=signal.SIGSEGV), TerminalReason.SIGNALED),
    (info(sig=signal.SIGABRT), TerminalReason.SIGNALED),
    (info(sig=signal.SIGTERM), TerminalReason.SIGNALED),
    (info(exit_code=3), TerminalReason.EXITED),
])
def test_exit_reasons(exit_info: ExitInfo, reason: TerminalReason) -> None:
    got, message = classify_exit(exit_info, HANDLE)  # type: ignore[arg-type]
    assert got == reason, message


def test_an_external_sigkill_is_retried_as_infrastructure() -> None:
    got, message = classify_exit(info(sig=signal.SIGKILL), HANDLE)  # type: ignore[arg-type]
    assert got in INFRA_FAILURES
    assert "SIGKILL from outside surge" in message

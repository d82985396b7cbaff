"""Starting container processes: the only module of the agent that spawns anything.

A container is ``python -m surge.runtime`` in its own session (so a signal reaches its whole process
group), with its environment (``CUDA_VISIBLE_DEVICES``, secrets, the agent socket) and limits. A
zygote (``surge.runtime.zygote``: a template or a memory snapshot) is the same program started with
one end of a socket pair in ``SURGE_ZYGOTE_FD``; it forks containers itself (``agent/zygote.py``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from surge.agent.limits import preexec
from surge.agent.mounts import MountPlan
from surge.agent.sandbox import Confinement


class ContainerProcess(Protocol):
    """What the agent needs of a container's process: a spawned ``asyncio.subprocess.Process`` or a
    child forked by a zygote (``agent.zygote.ForkedProcess``)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...        # -N: killed by signal N
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int | None: ...        # None: it ended but how is unknown (its zygote died)


async def spawn(env: Mapping[str, str], *, cgroup_procs: str | None, memory_limit_mib: int | None,
                python: str | None = None, cwd: str | None = None,
                mounts: MountPlan | None = None, confinement: Confinement | None = None) -> asyncio.subprocess.Process:
    full_env = {**env, "SURGE_SPAWNED_AT": repr(time.time())}
    python = python or sys.executable
    argv = confinement.argv(python) if confinement is not None else [python, "-m", "surge.runtime"]
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=full_env, cwd=cwd, start_new_session=True,
        preexec_fn=functools.partial(preexec, cgroup_procs, memory_limit_mib, mounts, confinement),
    )


async def spawn_zygote(env: Mapping[str, str], sock_fd: int, *, cgroup_procs: str | None,
                       memory_limit_mib: int | None, python: str | None = None,
                       cwd: str | None = None, confinement: Confinement | None = None) -> asyncio.subprocess.Process:
    """A fork server holding ``sock_fd`` (its end of the agent's socket pair)."""
    return await asyncio.create_subprocess_exec(
        python or sys.executable, "-m", "surge.runtime",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**env, "SURGE_ZYGOTE_FD": str(sock_fd), "PYTHONUNBUFFERED": "1"}, cwd=cwd,
        start_new_session=True, pass_fds=(sock_fd,),
        preexec_fn=functools.partial(preexec, cgroup_procs, memory_limit_mib, None, confinement),
    )


def signal_group(pid: int, sig: int) -> bool:
    """Signal the container's whole process group; False if it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


async def run_command(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None,
                      on_line: Callable[[str], None] | None = None) -> int:
    """Run a setup command (an image build step, a mount probe) to completion: stdout and stderr
    merged, each line handed to ``on_line``; returns the exit code (negative: killed by a signal)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    try:
        async for raw in proc.stdout:
            if on_line is not None:
                on_line(raw.decode(errors="replace").rstrip("\r\n"))
        return await proc.wait()
    except BaseException:
        signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise


SIGTERM = signal.SIGTERM
SIGKILL = signal.SIGKILL

"""Starting container processes: the only module of the agent that spawns anything.

A container is ``python -m surge.runtime`` in its own session (so a signal reaches its whole process
group), with its environment (``CUDA_VISIBLE_DEVICES``, secrets, the agent socket) and limits.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import time
from collections.abc import Mapping

from surge.agent.limits import preexec


async def spawn(env: Mapping[str, str], *, cgroup_procs: str | None, memory_limit_mib: int | None,
                python: str | None = None, cwd: str | None = None) -> asyncio.subprocess.Process:
    full_env = {**env, "SURGE_SPAWNED_AT": repr(time.time())}
    return await asyncio.create_subprocess_exec(
        python or sys.executable, "-m", "surge.runtime",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=full_env, cwd=cwd, start_new_session=True,
        preexec_fn=functools.partial(preexec, cgroup_procs, memory_limit_mib),
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


SIGTERM = signal.SIGTERM
SIGKILL = signal.SIGKILL

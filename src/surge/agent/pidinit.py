"""A container's own PID namespace: the two small processes that hold it.

``unshare(CLONE_NEWPID)`` moves only the caller's *future* children into a new namespace, and the
first of them is its init (pid 1), which the kernel shields from signals it has no handler for
(``os.kill(os.getpid(), SIGKILL)`` in user code would do nothing) and whose death ends every
process in the namespace. So the container is the *second* process of its namespace:

    outer (host pid: what the agent knows; leaves the namespace's exit status to the agent)
     └─ init (pid 1: mounts /proc for the namespace, reaps orphans, dies with its parent)
         └─ container (pid 2: what ``split`` returns in; the runtime and the user's code)

The outer process mirrors how the container ended (exit code, or the same signal), so the agent
classifies a sandboxed container's end exactly like an unsandboxed one's. Signals reach the
container through its process group (the agent signals groups); the outer and init processes
ignore them. If the outer process is SIGKILLed, init follows (``PR_SET_PDEATHSIG``) and the
kernel kills everything left in the namespace: nothing a container started outlives it.

No surge imports: a fresh container runs this file directly (``python -I -S pidinit.py UID GID --
ARGV...``) so the helper costs an interpreter start-up, not an import of the platform; a template's
child calls ``split`` in-process after its fork.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop(uid: int | None, gid: int | None) -> None:
    """Become the sandbox user for good (all uids and gids, no supplementary groups: no way back)."""
    if gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)


def _mirror(status: int) -> None:
    """End this process the way the container did."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def split(uid: int | None, gid: int | None) -> None:
    """Enter a new PID namespace and return in its pid 2, as ``uid``/``gid``. The caller must be
    privileged (root) and single-threaded, in a mount namespace of its own (``/proc`` is remounted)."""
    # /proc is remounted below: only ever in a mount namespace of the container's own, never the
    # host's (the one our parent, the agent or a zygote, lives in)
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        raise OSError("refusing to mount /proc in the host's mount namespace (unshare CLONE_NEWNS first)")
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    status_r, status_w = os.pipe()
    init = os.fork()
    if init:
        os.close(status_w)
        drop(uid, gid)
        for s in _FORWARDED:
            signal.signal(s, signal.SIG_IGN)
        _, status = os.waitpid(init, 0)
        reported = os.read(status_r, 32)
        _mirror(int(reported) if reported else status)
    try:
        os.close(status_r)
        # (its parent is outside the namespace, so getppid() is 0 and cannot tell whether the outer
        # process died before this line; the agent signals the whole group anyway)
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
        drop(uid, gid)
        child = os.fork()
    except BaseException as exc:
        os.write(2, f"surge: cannot set up the container's PID namespace: {exc}\n".encode())
        os._exit(1)
    if child == 0:
        os.close(status_w)
        for s in _FORWARDED:
            signal.signal(s, signal.SIG_DFL)
        return
    for s in _FORWARDED:
        signal.signal(s, signal.SIG_IGN)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os.write(status_w, str(status).encode())
            os._exit(0)      # the kernel kills what is left in the namespace


def main(argv: list[str]) -> None:
    """``pidinit.py UID GID -- PROGRAM ARGS...``: run PROGRAM as pid 2 of a new PID namespace."""
    sep = argv.index("--")
    uid, gid = (int(v) if v != "-" else None for v in argv[:2])
    try:
        split(uid, gid)
    except OSError as exc:
        os.write(2, f"surge: cannot set up the container's PID namespace: {exc}\n".encode())
        os._exit(1)
    program = argv[sep + 1:]
    try:
        os.execv(program[0], program)
    except OSError as exc:
        os.write(2, f"surge: cannot start {program[0]}: {exc}\n".encode())
        os._exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])

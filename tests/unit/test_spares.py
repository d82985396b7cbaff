"""The pieces of a snapshot spare that run without a server: the child's wait for its assignment
(``runtime.zygote.wait_assignment``) and a spare's cgroups taking the container's name
(``CgroupGroup.rename``). The whole path runs in tests/e2e/test_spares.py."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from surge import wire
from surge.agent.limits import CgroupGroup
from surge.runtime.zygote import wait_assignment


def test_a_spare_joins_its_cgroups_says_ready_then_takes_its_assignment_and_pipes(tmp_path: Path) -> None:
    procs = [tmp_path / "memory.procs", tmp_path / "pids.procs"]
    agent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        assign = {"t": "assign", "container_id": "ct-1", "env": {"A": "1"}, "cwd": None}
        socket.send_fds(agent, [wire.encode(assign)], [w, w])   # queued before the child reads
        header, fds = wait_assignment(os.dup(child.fileno()), [str(p) for p in procs])
        assert header == assign
        assert [p.read_text() for p in procs] == [str(os.getpid())] * 2
        ready = agent.recv(4096)
        size, hlen = int.from_bytes(ready[:4], "big"), int.from_bytes(ready[4:8], "big")
        assert len(ready) == 8 + size and json.loads(ready[8:8 + hlen]) == {"t": "ready"}
        os.write(fds[0], b"x")
        assert os.read(r, 1) == b"x"                # the pipe end it was sent
        for fd in fds:
            os.close(fd)
    finally:
        for fd in (r, w):
            os.close(fd)
        agent.close()
        child.close()


def test_renaming_a_spares_cgroups_moves_both_hierarchies(tmp_path: Path) -> None:
    (tmp_path / "memory" / "sp-1").mkdir(parents=True)
    (tmp_path / "pids" / "sp-1").mkdir(parents=True)
    group = CgroupGroup(tmp_path / "memory" / "sp-1", 1, tmp_path / "pids" / "sp-1")
    group.rename("ct-9")
    assert (group.path, group.pids_path) == (tmp_path / "memory" / "ct-9", tmp_path / "pids" / "ct-9")
    assert sorted(p.name for p in tmp_path.glob("*/*")) == ["ct-9", "ct-9"]


def test_a_cgroup_that_cannot_be_renamed_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "sp-1").mkdir()
    (tmp_path / "ct-9").mkdir()
    (tmp_path / "ct-9" / "busy").write_text("")       # rename over a non-empty directory fails
    group = CgroupGroup(tmp_path / "sp-1", 2)
    group.rename("ct-9")
    assert group.path == tmp_path / "sp-1" and group.path.is_dir()
    assert group.procs_file() == str(tmp_path / "sp-1" / "cgroup.procs")

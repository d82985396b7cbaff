"""The pieces of the fork server that need no second process: CUDA detection (a stand-in ``torch``
module and a fake ``/proc/self/fd``), the exit code of ``SystemExit``, the socket framing with file
descriptors passed alongside, and the cold-start summary by start kind."""

from __future__ import annotations

import os
import socket
import sys
import types
from pathlib import Path

import pytest

from surge import wire
from surge.core.metering import START_KINDS, ColdStarts, cold_starts
from surge.runtime import zygote


class StandInCuda:
    """Stands in for ``torch.cuda`` (torch is not installed on the test machines)."""

    def __init__(self, initialized: bool | Exception) -> None:
        self.initialized = initialized

    def is_initialized(self) -> bool:
        if isinstance(self.initialized, Exception):
            raise self.initialized
        return self.initialized


@pytest.fixture
def torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("torch")
    monkeypatch.setitem(sys.modules, "torch", module)
    return module


def fake_fds(tmp_path: Path, targets: list[str]) -> str:
    d = tmp_path / "fd"
    d.mkdir()
    for i, target in enumerate(targets):
        (d / str(i)).symlink_to(target)
    return str(d)


def test_no_torch_and_no_devices_is_no_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert zygote.cuda_evidence(fake_fds(tmp_path, ["/dev/null", "socket:[123]"])) is None


@pytest.mark.parametrize(("initialized", "found"), [(True, True), (False, False), (RuntimeError("no driver"), False)])
def test_torch_cuda_initialised_is_cuda(torch: types.ModuleType, tmp_path: Path, initialized: bool | Exception,
                                        found: bool) -> None:
    torch.cuda = StandInCuda(initialized)  # type: ignore[attr-defined]
    evidence = zygote.cuda_evidence(fake_fds(tmp_path, []))
    assert (evidence == "torch.cuda.is_initialized() is True") is found
    assert found or evidence is None


def test_torch_without_cuda_attribute_is_not_cuda(torch: types.ModuleType, tmp_path: Path) -> None:
    assert zygote.cuda_evidence(fake_fds(tmp_path, [])) is None


def test_open_nvidia_devices_are_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    fds = fake_fds(tmp_path, ["/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia0", "/dev/null"])
    assert zygote.nvidia_handles(fds) == ["/dev/nvidia0", "/dev/nvidiactl"]
    assert zygote.cuda_evidence(fds) == "the process holds open handles to /dev/nvidia0, /dev/nvidiactl"


def test_unreadable_fd_directory_finds_nothing(tmp_path: Path) -> None:
    assert zygote.nvidia_handles(str(tmp_path / "missing")) == []


def test_the_refusal_names_the_step_and_the_fix(torch: types.ModuleType) -> None:
    torch.cuda = StandInCuda(True)  # type: ignore[attr-defined]
    with pytest.raises(zygote.SnapshotRefused) as info:
        zygote.check_no_cuda("the hook Model.load (@surge.enter(snap=True))")
    message = str(info.value)
    assert "CUDA was initialised during the hook Model.load" in message
    assert "@surge.enter(snap=False)" in message and "enable_memory_snapshot=False" in message


def test_this_test_process_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    zygote.check_no_cuda("nothing")        # no torch, no GPU on the test machines: no exception


@pytest.mark.parametrize(("code", "expected"), [(None, 0), (0, 0), (3, 3), (256 + 7, 7), ("bye", 1)])
def test_exit_code_matches_the_interpreter(code: object, expected: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert zygote.exit_code(code) == expected
    assert ("bye" in capsys.readouterr().err) is (code == "bye")


def test_channel_reads_frames_and_their_file_descriptors() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        chan = zygote.Channel(theirs)
        first = wire.encode({"t": "fork", "container_id": "ct-1"})
        socket.send_fds(ours, [first], [w, w])
        ours.sendall(wire.encode({"t": "other"}, b"body"))
        seen: list[tuple[dict[str, object], bytes]] = []
        while len(seen) < 2:
            assert chan.fill()
            seen += chan.frames()
        assert seen == [({"t": "fork", "container_id": "ct-1"}, b""), ({"t": "other"}, b"body")]
        fds = chan.take_fds(2)
        assert len(fds) == 2 and all(fd not in (r, w) for fd in fds)   # received as new descriptors
        os.write(fds[0], b"x")
        assert os.read(r, 1) == b"x"
        for fd in fds:
            os.close(fd)
        with pytest.raises(RuntimeError, match="expected 1 file descriptors"):
            chan.take_fds(1)
        chan.send({"t": "exit", "pid": 1, "returncode": -9})
        assert wire.BlockingConn(ours).recv() == ({"t": "exit", "pid": 1, "returncode": -9}, b"")
        ours.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            chan.recv()
    finally:
        for fd in (r, w):
            os.close(fd)
        ours.close()
        theirs.close()


def test_cold_starts_by_kind() -> None:
    out = cold_starts([("snapshot", 0.004), ("snapshot", 0.006), ("template", None), (None, 0.5), ("odd", 1.0)])
    assert list(out) == list(START_KINDS)
    assert out["snapshot"] == ColdStarts(count=2, ready=2, seconds=pytest.approx(0.01))
    assert out["snapshot"].mean == pytest.approx(0.005)
    assert out["template"] == ColdStarts(count=1, ready=0, seconds=0.0) and out["template"].mean is None
    assert out["fresh"] == ColdStarts(count=2, ready=2, seconds=1.5)   # unknown kinds count as fresh
    assert out["zygote"] == ColdStarts()

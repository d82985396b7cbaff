"""surge.core.sandbox: levels, per-workspace uids, and the plan of a container's file-system view."""

from __future__ import annotations

import pytest

from surge.core.sandbox import (
    UID_BASE,
    SandboxUnavailable,
    ViewOp,
    ancestors,
    plan_view,
    resolve_level,
    uid_for,
)


@pytest.mark.parametrize(("requested", "embedded", "missing", "level"), [
    ("auto", False, None, "strict"),          # a standalone server on a capable host
    ("auto", True, None, "basic"),            # surge run's embedded server: the developer's own code
    ("auto", False, "not root", "basic"),     # a host without the mechanisms
    ("strict", True, None, "strict"),         # asked for explicitly: embedded too
    ("basic", False, None, "basic"),
    ("off", False, "not root", "off"),
])
def test_levels(requested: str, embedded: bool, missing: str | None, level: str) -> None:
    assert resolve_level(requested, embedded=embedded, strict_missing=missing) == level


def test_strict_on_a_host_without_it_is_refused_with_the_reason() -> None:
    with pytest.raises(SandboxUnavailable, match=r"not root.*surge doctor.*--sandbox basic"):
        resolve_level("strict", embedded=False, strict_missing="not root")


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="'paranoid' is not one of auto, strict, basic, off"):
        resolve_level("paranoid", embedded=False, strict_missing=None)


def test_a_workspace_keeps_its_uid_and_two_never_share_one() -> None:
    a = uid_for("team-a", {})
    assert a == uid_for("team-a", {}) == uid_for("team-a", {a: "team-a"})
    assert UID_BASE <= a < UID_BASE + 100_000_000
    # a collision moves the newcomer to the next free uid (a span of 2 forces one)
    first = uid_for("team-b", {}, span=2)
    assert uid_for("team-b", {first: "team-a"}, span=2) == UID_BASE + (1 - (first - UID_BASE))
    with pytest.raises(RuntimeError, match="no free sandbox uid"):
        uid_for("team-c", {UID_BASE: "team-a"}, span=1)


def test_ancestors() -> None:
    assert ancestors("/a/b/c") == ["/a", "/a/b"]
    assert ancestors("/a") == []


HIDE = {"/srv/home": "mode=0755,size=64k", "/tmp": "mode=1777,size=16m"}


def test_needed_paths_under_a_hidden_one_are_bound_back_read_only_unless_writable() -> None:
    ops = plan_view([("/srv/home/sources/abc", False), ("/srv/home/cache/weights", True), ("/usr/lib", False)],
                    HIDE, blocked=lambda d: False)
    assert ops == [
        ViewOp("tmpfs", "/tmp", "mode=1777,size=16m"),
        ViewOp("tmpfs", "/srv/home", "mode=0755,size=64k"),
        ViewOp("bind", "/srv/home/cache/weights", writable=True),
        ViewOp("bind", "/srv/home/sources/abc"),
    ]   # /usr/lib is visible as it is


def test_the_shallowest_untraversable_ancestor_is_covered_and_the_path_shown_again() -> None:
    blocked = {"/root", "/root/.pyenv/secret"}
    ops = plan_view([("/root/.pyenv/versions/3.11", False)], {}, blocked=lambda d: d in blocked)
    assert ops == [ViewOp("tmpfs", "/root", "mode=0755,size=64k"), ViewOp("bind", "/root/.pyenv/versions/3.11")]


def test_a_path_inside_another_needed_one_comes_with_it_and_makes_it_writable() -> None:
    ops = plan_view([("/tmp/run/c/x", False), ("/tmp/run/c/x/sub", True), ("/tmp/run/c/x", False)],
                    {"/tmp": "size=1m"}, blocked=lambda d: False)
    assert ops == [ViewOp("tmpfs", "/tmp", "size=1m"), ViewOp("bind", "/tmp/run/c/x", writable=True)]


def test_a_hidden_path_inside_a_bound_one_is_covered_after_the_bind() -> None:
    ops = plan_view([("/root/work", False)], {"/root/work/home": "size=64k"}, blocked=lambda d: d == "/root")
    assert [(op.kind, op.path) for op in ops] == [("tmpfs", "/root"), ("bind", "/root/work"),
                                                  ("tmpfs", "/root/work/home")]


def test_a_needed_path_equal_to_a_cover_is_bound_over_it() -> None:
    ops = plan_view([("/tmp/x/", True)], {"/tmp/x": "size=1m"}, blocked=lambda d: False)
    assert ops == [ViewOp("tmpfs", "/tmp/x", "size=1m"), ViewOp("bind", "/tmp/x", writable=True)]


def test_a_confinement_crosses_the_zygote_socket_intact_and_names_its_command() -> None:
    import json
    import sys

    from surge.agent.sandbox import PIDINIT, Confinement

    conf = Confinement("strict", uid=2_000_000_123, gid=2_000_000_123, mount_ns=True, pid_ns=True,
                       view=[ViewOp("tmpfs", "/tmp", "size=1m"), ViewOp("bind", "/src", writable=False)],
                       chown=["/data"], rlimits={"NOFILE": 256, "FSIZE": 1 << 20, "CORE": 0}, join=["/x/cgroup.procs"],
                       workdir="/tmp")
    assert Confinement.from_json(json.loads(json.dumps(conf.to_json()))) == conf
    assert conf.argv("/img/bin/python") == [sys.executable, "-I", "-S", PIDINIT, "2000000123", "2000000123", "--",
                                            "/img/bin/python", "-m", "surge.runtime"]
    assert Confinement("basic").argv("/py") == ["/py", "-m", "surge.runtime"]


from __future__ import annotations

import doctest

import pytest

import surge.core.placement
from surge.core.gpu import expand_inventory, parse_gpu
from surge.core.models import Gpu, GpuRequest, NodeInventory, NodeUsage, Resources
from surge.core.placement import (
    Placement,
    allocate,
    candidate_types,
    free_gpu_indices,
    never_fits,
    place,
    release,
)
from surge.errors import ConflictError

GiB = 1024


def node(node_id: str, cpu: float = 8, memory: int = 32 * GiB, gpus: str = "") -> NodeInventory:
    return NodeInventory(node_id, cpu, memory, expand_inventory(gpus))


def used(cpu: float = 0.0, memory: int = 0, gpus: set[int] | None = None) -> NodeUsage:
    return NodeUsage(cpu=cpu, memory=memory, gpu_indices=set(gpus or ()))


def req(cpu: float = 1, memory: int = GiB, gpu: str | list[str] | None = None) -> Resources:
    return Resources(cpu=cpu, memory=memory, gpu=parse_gpu(gpu))


# --- place -------------------------------------------------------------------------------------

CPU_CASES = [
    pytest.param(req(), [], None, id="no-nodes"),
    pytest.param(req(), [(node("a"), used())], Placement("a", None, ()), id="one-empty-node"),
    pytest.param(req(cpu=8), [(node("a"), used())], Placement("a", None, ()), id="exact-cpu-fit"),
    pytest.param(req(cpu=8.5), [(node("a"), used())], None, id="cpu-too-big"),
    pytest.param(req(memory=32 * GiB), [(node("a"), used())], Placement("a", None, ()), id="exact-memory-fit"),
    pytest.param(req(memory=32 * GiB + 1), [(node("a"), used())], None, id="memory-too-big"),
    pytest.param(req(cpu=0.3), [(node("a", cpu=0.6), used(cpu=0.1 + 0.2))], Placement("a", None, ()),
                 id="float-rounding-is-not-a-shortfall"),
    pytest.param(req(cpu=2), [(node("a"), used(cpu=7))], None, id="cpu-used-up"),
    pytest.param(req(memory=2 * GiB), [(node("a"), used(memory=31 * GiB))], None, id="memory-used-up"),
    pytest.param(req(), [(node("a"), used()), (node("b"), used(cpu=4, memory=16 * GiB))],
                 Placement("b", None, ()), id="fullest-wins"),
    pytest.param(req(), [(node("b"), used()), (node("a"), used())], Placement("a", None, ()),
                 id="tie-by-node-id"),
    pytest.param(req(cpu=4), [(node("a"), used(cpu=6)), (node("b"), used(cpu=1))], Placement("b", None, ()),
                 id="fullest-that-fits"),
    pytest.param(req(), [(node("a", cpu=8), used(cpu=4)), (node("b", cpu=16), used(cpu=4))],
                 Placement("a", None, ()), id="fullness-is-a-share-not-an-amount"),
    pytest.param(req(), [(node("a"), used(memory=24 * GiB)), (node("b"), used(cpu=7))],
                 Placement("b", None, ()), id="cpu-and-memory-shares-averaged"),
    pytest.param(req(), [(node("a", gpus="H100:1"), used()), (node("b"), used(cpu=1))],
                 Placement("b", None, ()), id="cpu-request-ignores-gpu-share"),
    pytest.param(Resources(cpu=0, memory=0), [(node("z", cpu=0, memory=0), used())], Placement("z", None, ()),
                 id="zero-capacity-node"),
]


@pytest.mark.parametrize(("request_", "nodes", "expected"), CPU_CASES)
def test_place_cpu_only(request_: Resources, nodes: list[tuple[NodeInventory, NodeUsage]],
                        expected: Placement | None) -> None:
    assert place(request_, nodes) == expected


GPU_CASES = [
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:2"), used())], Placement("a", "H100", (0,)),
                 id="lowest-index"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:3"), used(gpus={0, 2}))], Placement("a", "H100", (1,)),
                 id="lowest-free-index"),
    pytest.param(req(gpu="H100:2"), [(node("a", gpus="H100:4"), used(gpus={1}))], Placement("a", "H100", (0, 2)),
                 id="lowest-free-indices-with-gap"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="A100-80GB:2,H100:1"), used())], Placement("a", "H100", (2,)),
                 id="indices-of-the-type"),
    pytest.param(req(gpu="H100:2"), [(node("a", gpus="A100-80GB:2,H100:1"), used())], None,
                 id="not-enough-of-the-type"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:1"), used(gpus={0}))], None, id="gpu-taken"),
    pytest.param(req(gpu="H100"), [(node("a"), used())], None, id="node-without-gpus"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:1"), used(cpu=8))], None, id="gpu-free-but-no-cpu"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:1"), used(cpu=8)), (node("b", gpus="H100:1"), used())],
                 Placement("b", "H100", (0,)), id="gpu-on-node-with-cpu"),
    pytest.param(req(gpu=["H100", "A100-80GB"]),
                 [(node("a", gpus="A100-80GB:1"), used(cpu=7)), (node("b", gpus="H100:1"), used())],
                 Placement("b", "H100", (0,)), id="first-type-wins-over-fuller-node"),
    pytest.param(req(gpu=["H100", "A100-80GB"]),
                 [(node("a", gpus="A100-80GB:1"), used()), (node("b", gpus="H100:1"), used(gpus={0}))],
                 Placement("a", "A100-80GB", (0,)), id="falls-back-to-second-type"),
    pytest.param(req(gpu="A100"), [(node("a", gpus="A100-80GB:1"), used())], Placement("a", "A100-80GB", (0,)),
                 id="a100-family-80"),
    pytest.param(req(gpu="A100"), [(node("a", gpus="A100-80GB:1,A100-40GB:1"), used())],
                 Placement("a", "A100-40GB", (1,)), id="a100-family-prefers-40"),
    pytest.param(req(gpu="any"), [(node("a", gpus="H100:1,T4:1"), used())], Placement("a", "T4", (1,)),
                 id="any-smallest-first"),
    pytest.param(req(gpu="any:2"), [(node("a", gpus="H100:2,T4:1"), used())], Placement("a", "H100", (0, 1)),
                 id="any-needs-count-of-one-type"),
    pytest.param(req(gpu="any"), [(NodeInventory("a", 8, 32 * GiB, (Gpu(0, "RTX4090"),)), used())],
                 Placement("a", "RTX4090", (0,)), id="any-accepts-unknown-types"),
    pytest.param(req(gpu="any:2"), [(node("a", gpus="H100:1,T4:1"), used())], None, id="any-no-single-type"),
    pytest.param(req(gpu="H100"),
                 [(node("a", gpus="H100:8"), used()), (node("b", gpus="H100:8"), used(gpus={0, 1}))],
                 Placement("b", "H100", (2,)), id="fuller-gpu-node-wins"),
    pytest.param(req(gpu="H100"),
                 [(node("a", gpus="H100:2"), used(gpus={0})), (node("b", gpus="H100:2"), used(gpus={0}, cpu=4))],
                 Placement("b", "H100", (1,)), id="gpu-share-tie-then-cpu-memory-share"),
    pytest.param(req(gpu="H100"),
                 [(node("b", gpus="H100:2"), used()), (node("a", gpus="H100:2"), used())],
                 Placement("a", "H100", (0,)), id="gpu-tie-by-node-id"),
    pytest.param(req(gpu="H100"), [(node("a", gpus="H100:1"), used(gpus={5}))], Placement("a", "H100", (0,)),
                 id="unknown-used-index-ignored"),
]


@pytest.mark.parametrize(("request_", "nodes", "expected"), GPU_CASES)
def test_place_gpu(request_: Resources, nodes: list[tuple[NodeInventory, NodeUsage]],
                   expected: Placement | None) -> None:
    assert place(request_, nodes) == expected


@pytest.mark.parametrize(
    ("types", "present", "expected"),
    [
        (("H100",), "", ("H100",)),
        (("H100", "A100-80GB", "H100"), "", ("H100", "A100-80GB")),
        (("any",), "", ("T4", "L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100", "H200", "B200")),
        (("H100", "any"), "", ("H100", "T4", "L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H200", "B200")),
    ],
)
def test_candidate_types(types: tuple[str, ...], present: str, expected: tuple[str, ...]) -> None:
    assert candidate_types(GpuRequest(types), [node("a", gpus=present)]) == expected


def test_candidate_types_any_appends_unknown_types_by_name() -> None:
    inv = NodeInventory("a", 8, GiB, (Gpu(0, "ZZ"), Gpu(1, "RTX4090"), Gpu(2, "H100")))
    assert candidate_types(GpuRequest(("any",)), [inv])[-2:] == ("RTX4090", "ZZ")


def test_free_gpu_indices() -> None:
    inv = node("a", gpus="H100:2,T4:2,H100:1")
    assert free_gpu_indices(inv, used(gpus={1}), "H100") == (0, 4)
    assert free_gpu_indices(inv, used(), "L4") == ()


# --- never_fits --------------------------------------------------------------------------------

FITS = [
    pytest.param(req(), [node("a")], id="plain"),
    pytest.param(req(cpu=8, memory=32 * GiB), [node("a")], id="exact"),
    pytest.param(req(gpu="H100:2"), [node("a", gpus="H100:1"), node("b", gpus="H100:2")], id="second-node"),
    pytest.param(req(gpu=["B200", "A100"]), [node("a", gpus="A100-40GB:1")], id="later-type"),
    pytest.param(req(gpu="any:2"), [node("a", gpus="T4:2")], id="any"),
]


@pytest.mark.parametrize(("request_", "inventories"), FITS)
def test_never_fits_none_when_an_empty_node_fits(request_: Resources, inventories: list[NodeInventory]) -> None:
    assert never_fits(request_, inventories) is None


NEVER = [
    pytest.param(req(), [], ["no node is registered"], id="no-nodes"),
    pytest.param(req(gpu="H100:2"), [node("a", gpus="A100-80GB:2,H100:1")],
                 ["needs 2 × H100 but the largest node has 1 × H100 (inventory: A100-80GB:2, H100:1); "
                  "declare more with --gpus or lower the count"], id="gpu-count-example"),
    pytest.param(req(memory=64 * GiB), [node("a", memory=23962)],
                 ["asks for 64 GiB memory; the largest node has 23.4 GiB",
                  "lower memory= or add a node with more memory"], id="memory-example"),
    pytest.param(req(memory=2000), [node("a", memory=512)],
                 ["asks for 2 GiB memory; the largest node has 512 MiB"], id="memory-small-node"),
    pytest.param(req(memory=64 * GiB + 1), [node("a", memory=64 * GiB)],
                 ["asks for 65537 MiB memory; the largest node has 65536 MiB"], id="memory-same-when-rounded"),
    pytest.param(req(cpu=64), [node("a", cpu=16), node("b", cpu=8)],
                 ["asks for 64 cores; the largest node has 16 cores", "lower cpu="], id="cpu"),
    pytest.param(req(cpu=0.5), [node("a", cpu=0.25)], ["asks for 0.5 cores; the largest node has 0.25 cores"],
                 id="cpu-fractional"),
    pytest.param(req(cpu=64, memory=64 * GiB, gpu="H100"), [node("a")],
                 ["asks for 64 cores", "; asks for 64 GiB memory", "; needs 1 × H100 but no node has a GPU",
                  "declare GPUs with --gpus (e.g. --gpus H100:1) or drop gpu="], id="every-dimension"),
    pytest.param(req(gpu="H100"), [node("a", gpus="T4:1"), node("b", gpus="L4:2")],
                 ["needs 1 × H100 but no node has one (GPU types on the nodes: L4, T4)",
                  "ask for a type the nodes have"], id="type-missing"),
    pytest.param(req(gpu=["H100:4", "A100:4"]),
                 [node("b", gpus="A100-80GB:2"), node("a", gpus="H100:2"), node("c", gpus="H100:1")],
                 ["needs 4 × H100 or A100-40GB or A100-80GB but the largest node has 2 × H100 (inventory: H100:2)"],
                 id="several-types-best-by-preference-then-id"),
    pytest.param(req(gpu="A100:2"), [node("a", gpus="A100-40GB:1,A100-80GB:1")],
                 ["needs 2 × A100-40GB or A100-80GB but the largest node has 1 × A100-40GB "
                  "(inventory: A100-40GB:1, A100-80GB:1)"], id="mixed-family-does-not-add-up"),
    pytest.param(req(gpu="any:3"), [node("a", gpus="T4:2")],
                 ["needs 3 × any GPU but the largest node has 2 × T4"], id="any"),
    pytest.param(req(memory=16 * GiB, gpu="H100"), [node("a", memory=8 * GiB, gpus="H100:1"), node("b")],
                 ["no single node has 1 × H100, 1 core and 16 GiB memory at once: "
                  "a has 8 cores, 8 GiB, H100:1; b has 8 cores, 32 GiB, no GPU; "
                  "lower one of the requests or add a node that has all of them"], id="no-single-node-gpu"),
    pytest.param(req(cpu=8, memory=32 * GiB), [node("a", cpu=4), node("b", memory=GiB)],
                 ["no single node has 8 cores and 32 GiB memory at once: a has 4 cores, 32 GiB, no GPU; "
                  "b has 8 cores, 1 GiB, no GPU"], id="no-single-node-cpu"),
    pytest.param(req(cpu=8, memory=32 * GiB),
                 [node(f"n{i}", cpu=4) for i in range(6)] + [node("z", memory=GiB)],
                 ["n4 has 4 cores, 32 GiB, no GPU (+2 more); lower"], id="long-node-list-cut"),
]


@pytest.mark.parametrize(("request_", "inventories", "fragments"), NEVER)
def test_never_fits_explains(request_: Resources, inventories: list[NodeInventory], fragments: list[str]) -> None:
    message = never_fits(request_, inventories)
    assert message is not None
    for fragment in fragments:
        assert fragment in message


def test_never_fits_ignores_usage_place_does_not() -> None:
    inv = node("a", gpus="H100:1")
    assert never_fits(req(gpu="H100"), [inv]) is None
    assert place(req(gpu="H100"), [(inv, used(gpus={0}))]) is None


# --- allocate / release ------------------------------------------------------------------------


def test_allocate_then_release_round_trips_without_mutation() -> None:
    start = used(cpu=0.5, memory=GiB, gpus={3})
    request_ = req(cpu=0.1, memory=512, gpu="H100:2")
    placement = Placement("a", "H100", (0, 1))
    after = allocate(start, request_, placement)
    assert after == NodeUsage(cpu=0.6, memory=GiB + 512, gpu_indices={0, 1, 3})
    assert start == used(cpu=0.5, memory=GiB, gpus={3})
    back = release(after, request_, placement)
    assert back == start
    assert after == NodeUsage(cpu=0.6, memory=GiB + 512, gpu_indices={0, 1, 3})


def test_float_cores_do_not_drift() -> None:
    usage = used()
    one_tenth = req(cpu=0.1, memory=1)
    placement = Placement("a", None, ())
    for _ in range(10):
        usage = allocate(usage, one_tenth, placement)
    assert usage.cpu == 1.0
    for _ in range(10):
        usage = release(usage, one_tenth, placement)
    assert usage == used()


def test_allocate_refuses_a_taken_gpu() -> None:
    with pytest.raises(ConflictError, match=r"GPU indices \[1\] on node a are already allocated"):
        allocate(used(gpus={1}), req(gpu="H100:2"), Placement("a", "H100", (0, 1)))


@pytest.mark.parametrize(
    ("usage", "request_", "placement"),
    [
        pytest.param(used(cpu=1, memory=GiB), req(gpu="H100"), Placement("a", "H100", (0,)), id="gpu-not-held"),
        pytest.param(used(cpu=0.5, memory=GiB), req(cpu=1), Placement("a", None, ()), id="cpu-below-zero"),
        pytest.param(used(cpu=1, memory=10), req(cpu=1, memory=11), Placement("a", None, ()), id="memory-below-zero"),
    ],
)
def test_release_refuses_more_than_allocated(usage: NodeUsage, request_: Resources, placement: Placement) -> None:
    with pytest.raises(ConflictError, match="exceeds what is allocated"):
        release(usage, request_, placement)


def test_placement_is_usable_with_allocate() -> None:
    inv = node("a", gpus="H100:2")
    usage = used()
    request_ = req(gpu="H100")
    first = place(request_, [(inv, usage)])
    assert first is not None
    usage = allocate(usage, request_, first)
    second = place(request_, [(inv, usage)])
    assert second == Placement("a", "H100", (1,))
    assert second is not None
    usage = allocate(usage, request_, second)
    assert place(request_, [(inv, usage)]) is None


def test_docstring_examples() -> None:
    assert doctest.testmod(surge.core.placement).failed == 0

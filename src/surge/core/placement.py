"""Placement: which node runs a container, and which of its GPUs it gets.

Rules, in order:

1. CPU and memory must fit: ``free = inventory - usage`` on each dimension.
2. GPU types are tried in the request's order of preference; the first type that fits on *any*
   node wins, even if a later type would fit on a fuller node. ``"any"`` stands for every type,
   smallest card first (``ANY_GPU_ORDER``), then any unknown type a node declares, by name.
3. Among the nodes that fit, the **fullest** wins (bin-packing, so idle nodes drain and can be
   scaled in). Nodes are compared by this key, smallest first, measured before the placement:

   - for a GPU request, the node's *free GPU share*: free GPUs / all GPUs on the node (any type),
     so GPU work packs onto partly used machines and whole machines stay free for large requests;
   - the node's *free CPU+memory share*: ``(free_cpu / cpu + free_memory / memory) / 2``;
   - the node id (a deterministic tie-break).
4. The container gets the lowest free indices of the chosen type on that node.

>>> from surge.core.models import Gpu, NodeInventory, NodeUsage, Resources, GpuRequest
>>> node = NodeInventory("n1", cpu=8, memory=32768, gpus=(Gpu(0, "H100"), Gpu(1, "H100")))
>>> place(Resources(cpu=1, memory=1024, gpu=GpuRequest(("H100",))), [(node, NodeUsage(gpu_indices={0}))])
Placement(node_id='n1', gpu_type='H100', gpu_indices=(1,))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from surge.core.gpu import ANY, ANY_GPU_ORDER, format_inventory
from surge.core.models import GpuRequest, NodeInventory, NodeUsage, Resources
from surge.errors import ConflictError

# Fractional cores add up with rounding error (0.1 + 0.2); this much slack is not a real shortfall.
_EPS = 1e-9
_MAX_NODES_LISTED = 5


@dataclass(frozen=True, slots=True)
class Placement:
    node_id: str
    gpu_type: str | None
    gpu_indices: tuple[int, ...]


def place(request: Resources, nodes: Sequence[tuple[NodeInventory, NodeUsage]]) -> Placement | None:
    """Where ``request`` fits now, or ``None`` if no node has room for it at the moment."""
    fitting = [(inv, usage) for inv, usage in nodes if _cpu_memory_fit(request, inv, usage)]
    if request.gpu is None:
        if not fitting:
            return None
        inv, _ = min(fitting, key=lambda node: (_free_share(*node), node[0].node_id))
        return Placement(inv.node_id, None, ())
    count = request.gpu.count
    for gpu_type in candidate_types(request.gpu, (inv for inv, _ in nodes)):
        options = [
            (_gpu_free_share(inv, usage), _free_share(inv, usage), inv.node_id, free[:count])
            for inv, usage in fitting
            if len(free := free_gpu_indices(inv, usage, gpu_type)) >= count
        ]
        if options:
            _, _, node_id, indices = min(options)
            return Placement(node_id, gpu_type, indices)
    return None


def candidate_types(gpu: GpuRequest, inventories: Iterable[NodeInventory]) -> tuple[str, ...]:
    """The request's types in order of preference, with ``"any"`` spelled out."""
    present = {g.type for inv in inventories for g in inv.gpus}
    every = (*ANY_GPU_ORDER, *sorted(present - set(ANY_GPU_ORDER)))
    result: list[str] = []
    for t in gpu.types:
        result.extend(x for x in (every if t == ANY else (t,)) if x not in result)
    return tuple(result)


def free_gpu_indices(inventory: NodeInventory, usage: NodeUsage, gpu_type: str) -> tuple[int, ...]:
    """Indices of ``gpu_type`` cards not in use on the node, lowest first."""
    return tuple(sorted(g.index for g in inventory.gpus if g.type == gpu_type and g.index not in usage.gpu_indices))


def _cpu_memory_fit(request: Resources, inv: NodeInventory, usage: NodeUsage) -> bool:
    return request.cpu <= inv.cpu - usage.cpu + _EPS and request.memory <= inv.memory - usage.memory


def _share(free: float, total: float) -> float:
    return free / total if total > 0 else 0.0


def _free_share(inv: NodeInventory, usage: NodeUsage) -> float:
    return (_share(inv.cpu - usage.cpu, inv.cpu) + _share(inv.memory - usage.memory, inv.memory)) / 2


def _gpu_free_share(inv: NodeInventory, usage: NodeUsage) -> float:
    free = sum(1 for g in inv.gpus if g.index not in usage.gpu_indices)
    return _share(free, len(inv.gpus))


def never_fits(request: Resources, inventories: Sequence[NodeInventory]) -> str | None:
    """``None`` if some node could host ``request`` when empty; otherwise why not, with the fix.

    >>> never_fits(Resources(memory=65536), [NodeInventory("n1", cpu=8, memory=23962)])
    'asks for 64 GiB memory; the largest node has 23.4 GiB; lower memory= or add a node with more memory'
    """
    if not inventories:
        return "no node is registered; start a node agent or wait for one to join"
    if place(request, [(inv, NodeUsage()) for inv in inventories]) is not None:
        return None
    problems: list[str] = []
    largest_cpu = max(inv.cpu for inv in inventories)
    if request.cpu > largest_cpu + _EPS:
        asked, has = _cores(request.cpu), _cores(largest_cpu)
        problems.append(f"asks for {asked}; the largest node has {has}; lower cpu= or add a node with more cores")
    largest_memory = max(inv.memory for inv in inventories)
    if request.memory > largest_memory:
        asked, has = _memory_pair(request.memory, largest_memory)
        problems.append(
            f"asks for {asked} memory; the largest node has {has}; lower memory= or add a node with more memory"
        )
    if request.gpu is not None:
        gpu_problem = _gpu_shortfall(request.gpu, inventories)
        if gpu_problem:
            problems.append(gpu_problem)
    if problems:
        return "; ".join(problems)
    return _no_single_node(request, inventories)


def _gpu_shortfall(gpu: GpuRequest, inventories: Sequence[NodeInventory]) -> str | None:
    wanted = _times(gpu.count, _types_label(gpu.types))
    best_count, best_type, best_inv = 0, "", inventories[0]
    for gpu_type in candidate_types(gpu, inventories):
        for inv in sorted(inventories, key=lambda i: i.node_id):
            n = sum(1 for g in inv.gpus if g.type == gpu_type)
            if n > best_count:
                best_count, best_type, best_inv = n, gpu_type, inv
    if best_count >= gpu.count:
        return None
    if best_count:
        return (
            f"needs {wanted} but the largest node has {_times(best_count, best_type)} "
            f"(inventory: {format_inventory(best_inv.gpus)}); declare more with --gpus or lower the count"
        )
    present = sorted({g.type for inv in inventories for g in inv.gpus})
    if not present:
        return f"needs {wanted} but no node has a GPU; declare GPUs with --gpus (e.g. --gpus H100:1) or drop gpu="
    return (
        f"needs {wanted} but no node has one (GPU types on the nodes: {', '.join(present)}); "
        f"declare them with --gpus or ask for a type the nodes have"
    )


def _no_single_node(request: Resources, inventories: Sequence[NodeInventory]) -> str:
    wanted = [_cores(request.cpu), f"{_mib(request.memory)} memory"]
    if request.gpu is not None:
        wanted.insert(0, _times(request.gpu.count, _types_label(request.gpu.types)))
    listed = sorted(inventories, key=lambda i: i.node_id)
    nodes = "; ".join(_describe(inv) for inv in listed[:_MAX_NODES_LISTED])
    more = f" (+{len(listed) - _MAX_NODES_LISTED} more)" if len(listed) > _MAX_NODES_LISTED else ""
    return (
        f"no single node has {', '.join(wanted[:-1])} and {wanted[-1]} at once: {nodes}{more}; "
        f"lower one of the requests or add a node that has all of them"
    )


def _describe(inv: NodeInventory) -> str:
    gpus = f", {format_inventory(inv.gpus)}" if inv.gpus else ", no GPU"
    return f"{inv.node_id} has {_cores(inv.cpu)}, {_mib(inv.memory)}{gpus}"


def _times(count: int, what: str) -> str:
    return f"{count} × {what}"


def _types_label(types: tuple[str, ...]) -> str:
    return "any GPU" if types == (ANY,) else " or ".join(types)


def _cores(cpu: float) -> str:
    return f"{cpu:g} core" if cpu == 1 else f"{cpu:g} cores"


def _mib(mib: int) -> str:
    if mib < 1024:
        return f"{mib} MiB"
    return f"{mib / 1024:.1f}".removesuffix(".0") + " GiB"


def _memory_pair(asked: int, has: int) -> tuple[str, str]:
    # 65537 MiB and 65536 MiB both round to "64 GiB"; then only MiB shows the difference.
    a, h = _mib(asked), _mib(has)
    return (a, h) if a != h else (f"{asked} MiB", f"{has} MiB")


def allocate(usage: NodeUsage, request: Resources, placement: Placement) -> NodeUsage:
    """``usage`` plus what ``request`` takes at ``placement``. Raises ``ConflictError`` if a GPU is taken."""
    taken = usage.gpu_indices & set(placement.gpu_indices)
    if taken:
        raise ConflictError(f"GPU indices {sorted(taken)} on node {placement.node_id} are already allocated")
    return NodeUsage(
        cpu=round(usage.cpu + request.cpu, 9),
        memory=usage.memory + request.memory,
        gpu_indices=usage.gpu_indices | set(placement.gpu_indices),
    )


def release(usage: NodeUsage, request: Resources, placement: Placement) -> NodeUsage:
    """The inverse of ``allocate``. Raises ``ConflictError`` when releasing more than is allocated."""
    missing = set(placement.gpu_indices) - usage.gpu_indices
    cpu = round(usage.cpu - request.cpu, 9)
    memory = usage.memory - request.memory
    if missing or cpu < 0 or memory < 0:
        raise ConflictError(
            f"release on node {placement.node_id} of cpu={request.cpu}, memory={request.memory}, "
            f"gpus={list(placement.gpu_indices)} exceeds what is allocated (cpu={usage.cpu}, "
            f"memory={usage.memory}, gpus={sorted(usage.gpu_indices)})"
        )
    return NodeUsage(cpu=cpu, memory=memory, gpu_indices=usage.gpu_indices - set(placement.gpu_indices))

"""What a node has: GPUs (from NVML when a driver is present, or declared), CPU cores, memory.

The only module that talks to NVML. A declared inventory (``--gpus "A100-80GB:2,H100:1"`` or
``SURGE_GPUS``) wins over detection, so GPU scheduling can be exercised on machines without GPUs:
containers then get ``CUDA_VISIBLE_DEVICES`` exactly as they would on the real hardware.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import psutil

from surge.core.gpu import expand_inventory, normalize_gpu_type
from surge.core.models import Gpu, NodeInventory

_NVML_NAMES = {  # substrings of NVML product names → our type names
    "H200": "H200", "H100": "H100", "B200": "B200", "A100-SXM4-80GB": "A100-80GB", "A100 80GB": "A100-80GB",
    "A100-PCIE-80GB": "A100-80GB", "A100": "A100-40GB", "L40S": "L40S", "A10G": "A10G", "A10": "A10G",
    "L4": "L4", "T4": "T4",
}


def _nvml_type(name: str, memory_mib: int) -> str | None:
    up = name.upper()
    for key, value in _NVML_NAMES.items():
        if key.upper() in up:
            if value == "A100-40GB" and memory_mib > 60_000:
                return "A100-80GB"
            return value
    return None


def detect_gpus() -> tuple[Gpu, ...]:
    """GPUs visible through NVML; () when there is no driver (the normal case on CPU machines)."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no GPU here
        return ()
    try:
        out: list[Gpu] = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name: Any = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            mem = int(pynvml.nvmlDeviceGetMemoryInfo(h).total) // (1024 * 1024)
            kind = _nvml_type(name, mem)
            if kind is not None:
                out.append(Gpu(index=i, type=normalize_gpu_type(kind), memory_mib=mem))
        return tuple(out)
    finally:
        pynvml.nvmlShutdown()


def build_inventory(gpus: str | None = None, *, node_id: str | None = None, cpu: float | None = None,
                    memory_mib: int | None = None) -> NodeInventory:
    declared = gpus if gpus is not None else os.environ.get("SURGE_GPUS")
    gpu_list = expand_inventory(declared) if declared else detect_gpus()
    return NodeInventory(
        node_id=node_id or socket.gethostname(),
        cpu=float(cpu if cpu is not None else (os.cpu_count() or 1)),
        memory=int(memory_mib if memory_mib is not None else psutil.virtual_memory().total // (1024 * 1024)),
        gpus=gpu_list,
    )

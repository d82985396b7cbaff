"""Plain data shared by every layer: states, reasons, resources. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class InputState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self not in (InputState.QUEUED, InputState.RUNNING)


class TerminalReason(enum.StrEnum):
    USER_EXCEPTION = "USER_EXCEPTION"
    TIMEOUT = "TIMEOUT"
    OOM_KILLED = "OOM_KILLED"
    EXITED = "EXITED"
    SIGNALED = "SIGNALED"
    WORKER_LOST = "WORKER_LOST"
    INIT_FAILURE = "INIT_FAILURE"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
    NO_CAPACITY = "NO_CAPACITY"


class ContainerState(enum.StrEnum):
    STARTING = "STARTING"   # process launched, imports / enter hooks running
    IDLE = "IDLE"           # ready, no inputs
    BUSY = "BUSY"           # ready, at least one input
    STOPPING = "STOPPING"   # draining or being killed
    STOPPED = "STOPPED"


class CallKind(enum.StrEnum):
    REMOTE = "remote"
    MAP = "map"
    SPAWN = "spawn"
    GENERATOR = "generator"
    SCHEDULE = "schedule"
    HTTP = "http"


GPU_TYPES: tuple[str, ...] = ("H100", "H200", "B200", "A100-80GB", "A100-40GB", "L40S", "A10G", "L4", "T4")


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """A preference-ordered list of GPU types with one count, e.g. ``["H100", "A100-80GB"]`` × 2.

    ``types == ("any",)`` accepts every type.
    """

    types: tuple[str, ...]
    count: int = 1

    def label(self) -> str:
        t = "|".join(self.types)
        return t if self.count == 1 else f"{t}:{self.count}"


@dataclass(frozen=True, slots=True)
class Resources:
    """What one container asks for."""

    cpu: float = 0.125          # cores
    memory: int = 128           # MiB
    gpu: GpuRequest | None = None


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    type: str
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class NodeInventory:
    """A node's total capacity (what it has, not what is free)."""

    node_id: str
    cpu: float
    memory: int                  # MiB
    gpus: tuple[Gpu, ...] = ()


@dataclass(slots=True)
class NodeUsage:
    """What is already allocated on a node."""

    cpu: float = 0.0
    memory: int = 0
    gpu_indices: set[int] = field(default_factory=set)

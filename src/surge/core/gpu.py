"""GPU specs: the ``gpu=`` option of a function and the GPU inventory a node declares.

>>> parse_gpu("a100-80gb:2")
GpuRequest(types=('A100-80GB',), count=2)
>>> parse_gpu(["H100", "A100"])
GpuRequest(types=('H100', 'A100-40GB', 'A100-80GB'), count=1)
>>> expand_inventory("T4:1,L4:1")
(Gpu(index=0, type='T4', memory_mib=16384), Gpu(index=1, type='L4', memory_mib=24576))

Spellings are case-insensitive. A trailing ``!`` (``"H100!"``) is Modal's "do not upgrade me to a
better GPU"; surge never upgrades automatically, so it is accepted and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from surge.core.models import GPU_TYPES, Gpu, GpuRequest
from surge.errors import InvalidError

ANY = "any"
MAX_GPU_COUNT = 8
#: Types with a lower per-container cap than ``MAX_GPU_COUNT`` (Modal: at most 4 A10s).
MAX_COUNT_FOR: dict[str, int] = {"A10G": 4}

#: Nominal memory per card, MiB.
GPU_MEMORY_MIB: dict[str, int] = {
    "H100": 80 * 1024,
    "H200": 141 * 1024,
    "B200": 192 * 1024,
    "A100-80GB": 80 * 1024,
    "A100-40GB": 40 * 1024,
    "L40S": 48 * 1024,
    "A10G": 24 * 1024,
    "L4": 24 * 1024,
    "T4": 16 * 1024,
}

#: The order in which ``"any"`` tries types: smallest card first, so a request that takes any GPU
#: does not occupy a scarce large one while a small one is free.
ANY_GPU_ORDER: tuple[str, ...] = ("T4", "L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100", "H200", "B200")

# Spellings that name more than one canonical type (``gpu=`` only) or another spelling of one.
_FAMILIES: dict[str, tuple[str, ...]] = {"A100": ("A100-40GB", "A100-80GB")}
_ALIASES: dict[str, str] = {"A10": "A10G"}
_CANONICAL: dict[str, str] = {t.upper(): t for t in GPU_TYPES} | _ALIASES

_TYPES_HELP = f"Known types: {', '.join(GPU_TYPES)}"
_GPU_HELP = (
    f"{_TYPES_HELP}, A100 (either A100), any. "
    f"Count after a colon, 1..{MAX_GPU_COUNT} (at most {MAX_COUNT_FOR['A10G']} for A10G), e.g. 'H100:2'."
)


def normalize_gpu_type(name: str) -> str:
    """The canonical spelling of one GPU type: ``"a100-80gb"`` → ``"A100-80GB"``.

    Raises ``InvalidError`` for unknown names and for names that stand for several types (``"A100"``).
    """
    key = name.strip().upper()
    if key in _CANONICAL:
        return _CANONICAL[key]
    if key in _FAMILIES:
        options = " or ".join(_FAMILIES[key])
        raise InvalidError(f"GPU type {name!r} is ambiguous: say {options}")
    raise InvalidError(f"unknown GPU type {name!r}. {_TYPES_HELP}.")


def parse_gpu(spec: str | Sequence[str] | None) -> GpuRequest | None:
    """Parse the ``gpu=`` option: a string, or a list of strings in order of preference."""
    if spec is None:
        return None
    if isinstance(spec, str):
        types, count = _parse_entry(spec, spec)
        return GpuRequest(types=types, count=count)
    if not isinstance(spec, (list, tuple)):
        raise _gpu_error(spec, f"expected a string or a list of strings, got {type(spec).__name__}")
    if not spec:
        raise _gpu_error(spec, "the list is empty")
    merged: list[str] = []
    counts: list[int] = []
    for entry in spec:
        if not isinstance(entry, str):
            raise _gpu_error(spec, f"list entries must be strings, got {type(entry).__name__} {entry!r}")
        types, count = _parse_entry(spec, entry)
        merged.extend(t for t in types if t not in merged)
        counts.append(count)
    if len(set(counts)) > 1:
        shown = ", ".join(str(c) for c in counts)
        raise _gpu_error(spec, f"every entry must ask for the same count, got counts {shown}")
    return GpuRequest(types=tuple(merged), count=counts[0])


def _parse_entry(spec: object, entry: str) -> tuple[tuple[str, ...], int]:
    name, sep, count_text = entry.partition(":")
    name = name.strip().removesuffix("!").strip()
    count_text = count_text.strip().removesuffix("!").strip()
    key = name.upper()
    if key == ANY.upper():
        types: tuple[str, ...] = (ANY,)
    elif key in _FAMILIES:
        types = _FAMILIES[key]
    elif key in _CANONICAL:
        types = (_CANONICAL[key],)
    else:
        raise _gpu_error(spec, f"unknown GPU type {name!r}")
    if not sep:
        return types, 1
    count = _whole_number(count_text)
    if count is None:
        raise _gpu_error(spec, f"bad count {count_text!r} in {entry!r}")
    limit = min([MAX_COUNT_FOR.get(t, MAX_GPU_COUNT) for t in types])
    if not 1 <= count <= limit:
        raise _gpu_error(spec, f"count {count} is out of range for {name}: must be between 1 and {limit}")
    return types, count


def _whole_number(text: str) -> int | None:
    # isdigit() alone accepts "²", which int() refuses.
    return int(text) if text.isascii() and text.isdigit() else None


def _gpu_error(spec: object, problem: str) -> InvalidError:
    return InvalidError(f"gpu={spec!r}: {problem}. {_GPU_HELP}")


def parse_inventory(spec: str) -> list[tuple[str, int]]:
    """Parse a declared inventory: ``"A100-80GB:2, h100"`` → ``[("A100-80GB", 2), ("H100", 1)]``.

    The count defaults to 1. Empty entries (a trailing comma) are skipped; ``""`` means no GPUs.
    """
    result: list[tuple[str, int]] = []
    for item in spec.split(","):
        name, sep, count_text = item.partition(":")
        if not name.strip():
            if sep or count_text.strip():
                raise InvalidError(f"GPU inventory {spec!r}: entry {item.strip()!r} has no type; expected e.g. 'A100-80GB:2,H100:1'. {_TYPES_HELP}.")
            continue
        try:
            gpu_type = normalize_gpu_type(name)
        except InvalidError as exc:
            raise InvalidError(f"GPU inventory {spec!r}: {exc.message}") from None
        count = _whole_number(count_text.strip()) if sep else 1
        if count is None or count < 1:
            raise InvalidError(
                f"GPU inventory {spec!r}: bad count {count_text.strip()!r} for {gpu_type}; "
                f"expected a whole number of at least 1, e.g. 'A100-80GB:2,H100:1'"
            )
        result.append((gpu_type, count))
    return result


def format_inventory(gpus: Sequence[Gpu]) -> str:
    """The inverse of ``expand_inventory``: ``"A100-80GB:2, H100:1"`` (types in order of first index)."""
    counts: dict[str, int] = {}
    for gpu in sorted(gpus, key=lambda g: g.index):
        counts[gpu.type] = counts.get(gpu.type, 0) + 1
    return ", ".join(f"{t}:{n}" for t, n in counts.items())


def expand_inventory(spec: str, *, first_index: int = 0) -> tuple[Gpu, ...]:
    """One ``Gpu`` per declared card, with consecutive indices starting at ``first_index``."""
    gpus: list[Gpu] = []
    for gpu_type, count in parse_inventory(spec):
        for _ in range(count):
            gpus.append(Gpu(first_index + len(gpus), gpu_type, GPU_MEMORY_MIB[gpu_type]))
    return tuple(gpus)

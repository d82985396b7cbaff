from __future__ import annotations

import doctest
from collections.abc import Callable

import pytest

import surge.core.gpu
from surge.core.gpu import (
    ANY_GPU_ORDER,
    GPU_MEMORY_MIB,
    expand_inventory,
    format_inventory,
    normalize_gpu_type,
    parse_gpu,
    parse_inventory,
)
from surge.core.models import GPU_TYPES, Gpu, GpuRequest
from surge.errors import InvalidError

A100S = ("A100-40GB", "A100-80GB")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("A100-80GB", GpuRequest(("A100-80GB",), 1)),
        ("a100-80gb", GpuRequest(("A100-80GB",), 1)),
        ("h100:2", GpuRequest(("H100",), 2)),
        ("H100:8", GpuRequest(("H100",), 8)),
        ("H100:1", GpuRequest(("H100",), 1)),
        ("  l4 : 3 ", GpuRequest(("L4",), 3)),
        ("any", GpuRequest(("any",), 1)),
        ("ANY:2", GpuRequest(("any",), 2)),
        ("H100!", GpuRequest(("H100",), 1)),
        ("H100!:2", GpuRequest(("H100",), 2)),
        ("h100:2!", GpuRequest(("H100",), 2)),
        ("A100", GpuRequest(A100S, 1)),
        ("a100:4", GpuRequest(A100S, 4)),
        ("A10G:4", GpuRequest(("A10G",), 4)),
        ("a10", GpuRequest(("A10G",), 1)),
        ("t4", GpuRequest(("T4",), 1)),
        (["H100", "A100-80GB"], GpuRequest(("H100", "A100-80GB"), 1)),
        (("h100:2", "a100-80gb:2"), GpuRequest(("H100", "A100-80GB"), 2)),
        (["A100-80GB", "A100"], GpuRequest(("A100-80GB", "A100-40GB"), 1)),
        (["H100", "h100", "H100!"], GpuRequest(("H100",), 1)),
        (["L4", "any"], GpuRequest(("L4", "any"), 1)),
        (["T4"], GpuRequest(("T4",), 1)),
    ],
)
def test_parse_gpu(spec: object, expected: GpuRequest | None) -> None:
    assert parse_gpu(spec) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("gpu_type", GPU_TYPES)
def test_every_known_type_parses_in_any_case(gpu_type: str) -> None:
    assert parse_gpu(gpu_type.lower()) == GpuRequest((gpu_type,), 1)
    assert normalize_gpu_type(gpu_type.lower()) == gpu_type


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("X100", ["gpu='X100'", "unknown GPU type 'X100'"]),
        ("", ["gpu=''", "unknown GPU type ''"]),
        ("!", ["gpu='!'", "unknown GPU type ''"]),
        ("h100:0", ["gpu='h100:0'", "count 0", "between 1 and 8"]),
        ("h100:9", ["gpu='h100:9'", "count 9", "between 1 and 8"]),
        ("a10g:5", ["gpu='a10g:5'", "count 5", "between 1 and 4"]),
        ("a10:5", ["gpu='a10:5'", "between 1 and 4"]),
        ("any:9", ["gpu='any:9'", "between 1 and 8"]),
        ("h100:x", ["gpu='h100:x'", "bad count 'x'"]),
        ("h100:", ["gpu='h100:'", "bad count ''"]),
        ("h100:-1", ["bad count '-1'"]),
        ("h100:2:3", ["bad count '2:3'"]),
        ("h100:1.5", ["bad count '1.5'"]),
        ("h100:²", ["bad count '²'"]),
        (["H100", "X100"], ["gpu=['H100', 'X100']", "unknown GPU type 'X100'"]),
        (["H100:2", "A100"], ["same count", "2, 1"]),
        ([], ["gpu=[]", "the list is empty"]),
        ((), ["gpu=()", "the list is empty"]),
        (["H100", 2], ["list entries must be strings", "int 2"]),
        (2, ["gpu=2", "got int"]),
        (b"H100", ["gpu=b'H100'", "got bytes"]),
        ({"H100"}, ["got set"]),
    ],
)
def test_parse_gpu_errors(spec: object, fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        parse_gpu(spec)  # type: ignore[arg-type]
    message = str(info.value)
    for fragment in [*fragments, "Known types: H100, H200", "T4", "1..8", "at most 4 for A10G"]:
        assert fragment in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a100-80gb", "A100-80GB"), (" H100 ", "H100"), ("l40s", "L40S"), ("A10", "A10G"), ("a10g", "A10G")],
)
def test_normalize_gpu_type(name: str, expected: str) -> None:
    assert normalize_gpu_type(name) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", []),
        ("   ", []),
        ("A100-80GB:2,H100:1", [("A100-80GB", 2), ("H100", 1)]),
        (" a100-80gb : 2 , h100 ", [("A100-80GB", 2), ("H100", 1)]),
        ("T4", [("T4", 1)]),
        ("L4:16", [("L4", 16)]),
        ("H100:1,", [("H100", 1)]),
        ("H100:1,H100:2", [("H100", 1), ("H100", 2)]),
        ("a10:2", [("A10G", 2)]),
    ],
)
def test_parse_inventory(spec: str, expected: list[tuple[str, int]]) -> None:
    assert parse_inventory(spec) == expected


@pytest.mark.parametrize(
    ("parse", "text", "fragments"),
    [
        (normalize_gpu_type, "X100", ["unknown GPU type 'X100'", "Known types: H100, H200, B200, A100-80GB"]),
        (normalize_gpu_type, "any", ["unknown GPU type 'any'", "Known types:"]),
        (normalize_gpu_type, "", ["unknown GPU type ''"]),
        (normalize_gpu_type, "A100", ["'A100' is ambiguous", "A100-40GB or A100-80GB"]),
        (parse_inventory, "X100:2", ["GPU inventory 'X100:2'", "unknown GPU type 'X100'", "Known types:"]),
        (parse_inventory, "A100:2", ["GPU inventory 'A100:2'", "'A100' is ambiguous", "A100-40GB or A100-80GB"]),
        (parse_inventory, "any", ["unknown GPU type 'any'"]),
        (parse_inventory, "H100:0", ["bad count '0' for H100", "at least 1"]),
        (parse_inventory, "H100:", ["bad count '' for H100"]),
        (parse_inventory, "H100:two", ["bad count 'two'"]),
        (parse_inventory, ":2", ["entry ':2' has no type", "Known types:"]),
        (parse_inventory, "H100, :", ["entry ':' has no type"]),
    ],
)
def test_type_and_inventory_errors(parse: Callable[[str], object], text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidError) as info:
        parse(text)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("spec", "first_index", "expected"),
    [
        ("", 0, ()),
        (
            "A100-80GB:2,H100:1",
            0,
            (Gpu(0, "A100-80GB", 81920), Gpu(1, "A100-80GB", 81920), Gpu(2, "H100", 81920)),
        ),
        ("T4:1,L4:1", 4, (Gpu(4, "T4", 16384), Gpu(5, "L4", 24576))),
        ("a100-40gb", 0, (Gpu(0, "A100-40GB", 40960),)),
    ],
)
def test_expand_inventory(spec: str, first_index: int, expected: tuple[Gpu, ...]) -> None:
    assert expand_inventory(spec, first_index=first_index) == expected


def test_tables_cover_every_type() -> None:
    assert set(GPU_MEMORY_MIB) == set(GPU_TYPES)
    assert sorted(ANY_GPU_ORDER) == sorted(GPU_TYPES)


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        ((), ""),
        ((Gpu(1, "H100"), Gpu(0, "A100-80GB"), Gpu(2, "A100-80GB")), "A100-80GB:2, H100:1"),
        ((Gpu(0, "RTX4090"),), "RTX4090:1"),
    ],
)
def test_format_inventory(gpus: tuple[Gpu, ...], expected: str) -> None:
    assert format_inventory(gpus) == expected


@pytest.mark.parametrize("spec", ["", "H100:1", "A100-80GB:2, H100:1", "T4:3, L4:1, T4:1"])
def test_format_inventory_round_trips(spec: str) -> None:
    gpus = expand_inventory(spec)
    assert sum(n for _, n in parse_inventory(format_inventory(gpus))) == len(gpus)
    assert sorted(g.type for g in expand_inventory(format_inventory(gpus))) == sorted(g.type for g in gpus)


def test_docstring_examples() -> None:
    assert doctest.testmod(surge.core.gpu).failed == 0

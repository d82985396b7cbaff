"""Only the SDK and the container runtime ever unpickle user bytes (issue 5), checked on the syntax
tree of every module of the package (not by grep: aliases, ``from`` imports and dynamic imports
count, comments and strings do not).

Allowed to call an unpickling API of ``pickle``/``_pickle``/``cloudpickle``/``dill``/``shelve``/
``marshal`` (``loads``, ``load``, ``Unpickler``, ``open``):

- ``surge/sdk/serialization.py`` — the one wrapper: the SDK (in the user's process) decodes results
  and exceptions, and the container runtime decodes arguments through it;
- ``surge/runtime/`` — the container side (it goes through the wrapper today; allowed because it
  is the container).

And the control plane's own code (``server/``, ``agent/``, ``store/``, ``core/``, ``wire.py``)
must not call the wrapper's decoders or the SDK functions built on them: it moves arguments and
results as opaque bytes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import surge

PACKAGE = Path(surge.__file__).parent
PICKLE_MODULES = frozenset({"pickle", "_pickle", "cloudpickle", "dill", "shelve", "marshal"})
UNPICKLING = frozenset({"loads", "load", "Unpickler", "open"})   # shelve.open unpickles on read
ALLOWED = ("sdk/serialization.py", "runtime/")
SERVER_SIDE = ("server/", "agent/", "store/", "core/", "wire.py")
WRAPPER = "surge.sdk.serialization"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _module_name(path: Path) -> str:
    parts = ["surge", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


class Scanner(ast.NodeVisitor):
    """Names bound to ``modules`` (or to ``names`` of them), and uses of ``attrs`` through them."""

    def __init__(self, path: Path, modules: frozenset[str], attrs: frozenset[str]) -> None:
        self.path, self.module = _rel(path), _module_name(path)
        self.modules, self.attrs = modules, attrs
        self.aliases: set[str] = set()        # names bound to one of the modules
        self.findings: list[Finding] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name in self.modules:
                self.aliases.add(a.asname or a.name)
            elif a.asname is None and a.name.split(".")[0] in {m.split(".")[0] for m in self.modules}:
                self.aliases.add(a.name.split(".")[0] + "*")      # "import surge.sdk.serialization"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _resolve(node, self.module)
        for a in node.names:
            if source in self.modules and a.name in self.attrs:
                self.flag(node, f"from {source} import {a.name}")
            elif f"{source}.{a.name}" in self.modules:
                self.aliases.add(a.asname or a.name)               # "from surge.sdk import serialization"

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.attrs:
            owner = ast.unparse(node.value)
            if owner in self.aliases or owner in self.modules:
                self.flag(node, f"{owner}.{node.attr}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = ast.unparse(node.func)
        if func in ("__import__", "importlib.import_module", "import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and str(arg.value) in self.modules:
                self.flag(node, f"{func}({arg.value!r})")
        self.generic_visit(node)


def scan(path: Path, modules: frozenset[str], attrs: frozenset[str], text: str | None = None) -> list[Finding]:
    scanner = Scanner(path, modules, attrs)
    scanner.visit(ast.parse(path.read_text() if text is None else text, str(path)))
    return scanner.findings


def sources() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 50, f"only {len(found)} modules under {PACKAGE}?"
    return found


def wrapper_decoders() -> frozenset[str]:
    """The wrapper's functions that unpickle: those whose body calls an unpickling API."""
    tree = ast.parse((PACKAGE / "sdk" / "serialization.py").read_text())
    out = set()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            calls = {ast.unparse(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call)}
            if any(c.split(".")[-1] in UNPICKLING and c.split(".")[0] in PICKLE_MODULES for c in calls) or \
                    calls & {"loads", "deserialize_args"}:
                out.add(fn.name)
    return frozenset(out)


def test_pickle_loads_only_in_the_sdk_wrapper_and_the_runtime() -> None:
    findings = [f for p in sources() if not _rel(p).startswith(ALLOWED)
                for f in scan(p, PICKLE_MODULES, UNPICKLING)]
    assert findings == [], "unpickling outside the SDK wrapper and the container runtime:\n" + \
        "\n".join(map(str, findings))


def test_the_control_plane_never_calls_the_sdk_decoders() -> None:
    decoders = wrapper_decoders()
    assert {"loads", "deserialize_args", "deserialize_exception"} <= decoders, decoders
    findings = [f for p in sources() if _rel(p).startswith(SERVER_SIDE)
                for f in scan(p, frozenset({WRAPPER, "surge.sdk.call"}), decoders | {"decode_output"})]
    assert findings == [], "the control plane decodes user bytes:\n" + "\n".join(map(str, findings))


# -- the scanner itself: every way of spelling an unpickle is caught ------------------------------

CAUGHT = [
    "import pickle\npickle.loads(b'')",
    "import pickle as p\np.load(f)",
    "import cloudpickle as cp\nx = cp.Unpickler(f)",
    "from pickle import loads\n",
    "from pickle import loads as harmless\n",
    "from cloudpickle import load\n",
    "import _pickle\n_pickle.loads(b'')",
    "import dill\ndill.loads(b'')",
    "import shelve\nshelve.open('db')",
    "import marshal\nmarshal.loads(b'')",
    "import importlib\nimportlib.import_module('pickle')",
    "__import__('cloudpickle')",
    "def f():\n    import pickle\n    return pickle.loads(b'')",
]
NOT_CAUGHT = [
    "import pickle\npickle.dumps(1)",
    "import json\njson.loads('1')",
    "x = 'pickle.loads'  # pickle.loads in a comment",
    "from pickle import dumps\n",
]


PROBE = PACKAGE / "server" / "routes" / "_probe.py"     # never written: the code is passed as text


@pytest.mark.parametrize("code", CAUGHT)
def test_the_scanner_catches(code: str) -> None:
    assert scan(PROBE, PICKLE_MODULES, UNPICKLING, code), code


@pytest.mark.parametrize("code", NOT_CAUGHT)
def test_the_scanner_ignores(code: str) -> None:
    assert scan(PROBE, PICKLE_MODULES, UNPICKLING, code) == [], code


@pytest.mark.parametrize("code", [
    "from surge.sdk import serialization\nserialization.loads(b)",
    "from surge.sdk.serialization import deserialize_args\n",
    "from ...sdk import serialization as s\ns.deserialize_exception(b, '', '')",
    "import surge.sdk.serialization\nsurge.sdk.serialization.loads(b)",
    "from surge.sdk.call import decode_output\n",
])
def test_the_scanner_catches_the_wrapper_in_the_control_plane(code: str) -> None:
    assert scan(PROBE, frozenset({WRAPPER, "surge.sdk.call"}), wrapper_decoders() | {"decode_output"}, code), code

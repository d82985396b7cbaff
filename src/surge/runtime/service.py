"""Loading the user's code inside a container: import by module name, build the object of an
``@app.cls`` class with its parameters, run its ``@enter`` hooks; and the ``@exit`` hooks at the end."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surge import errors
from surge.sdk import serialization
from surge.sdk.app import find_app
from surge.sdk.cls import build_instance, run_enter_hooks, run_exit_hooks


@dataclass
class Target:
    fn: Callable[..., Any]
    is_generator: bool
    is_async: bool


@dataclass
class Service:
    targets: dict[str, Target]           # "" for a plain function, method names for a class
    instance: Any = None
    max_inputs: int = 1
    phases: dict[str, float] = field(default_factory=dict)
    batch: tuple[int, float] | None = None   # (max_batch_size, wait seconds) for @surge.batched

    @property
    def any_async(self) -> bool:
        return any(t.is_async for t in self.targets.values())

    @classmethod
    def load(cls, spec: dict[str, Any], params: bytes) -> Service:
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        root = spec["source_dir"]
        if root not in sys.path:
            sys.path.insert(0, root)
        module = spec["module"]
        importlib.import_module(module)
        app = find_app(spec.get("code_app") or spec.get("app"), module)
        # calls made from inside the container go to the same app version
        app._function_ids = dict(spec.get("app_functions") or {})
        app._app_id = spec.get("app_id")
        phases["imports"] = time.perf_counter() - t0
        max_inputs = int(spec.get("options", {}).get("max_inputs", 1))
        if spec.get("cls"):
            handle = app._classes.get(spec["cls"])
            if handle is None or handle.user_cls is None:
                raise errors.NotFoundError(f"class {spec['cls']!r} is not defined in module {module!r}")
            values = dict(serialization.loads(params)) if params else {}
            t1 = time.perf_counter()
            obj = build_instance(handle.user_cls, values)
            run_enter_hooks(obj, snap=True)
            run_enter_hooks(obj, snap=False)
            phases["enter"] = time.perf_counter() - t1
            targets = {name: Target(getattr(obj, name), info.is_generator, info.is_async)
                       for name, info in handle._methods.items()}
            return cls(targets, obj, max_inputs, phases)
        info = app._infos.get(spec["tag"])
        if info is None or info.raw is None:
            raise errors.NotFoundError(f"function {spec['tag']!r} is not defined in module {module!r}")
        opts = spec.get("options", {})
        batch = None
        if opts.get("batch_max_size"):
            batch = (int(opts["batch_max_size"]), float(opts.get("batch_wait_ms") or 0) / 1000.0)
        return cls({"": Target(info.raw, info.is_generator, info.is_async)}, None, max_inputs, phases, batch)

    def target(self, method: str | None) -> Target:
        t = self.targets.get(method or "")
        if t is None:
            raise errors.NotFoundError(f"no method {method!r} in this container")
        return t

    def close(self) -> None:
        if self.instance is not None:
            run_exit_hooks(self.instance)

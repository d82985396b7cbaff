"""Loading the user's code inside a container: import by module name, build the object of an
``@app.cls`` class with its parameters, run its ``@enter`` hooks; and the ``@exit`` hooks at the end.

Loading has two halves so a memory snapshot can sit between them: ``Service.prepare`` imports the
module, builds the object and runs the ``@enter(snap=True)`` hooks (what a zygote holds), and
``Service.enter`` runs the ``@enter(snap=False)`` hooks (what each forked container does for
itself). ``Service.load`` does both, for a container that starts on its own.
"""

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
from surge.sdk.cls import build_instance, hooks_of, parameters_of, resolve_params, run_exit_hooks

# called after the module import ("import of module 'x'") and after each snap=True hook
# ("hook Model.load"); a zygote uses it to refuse a snapshot that initialised CUDA
StepCheck = Callable[[str], None]


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
    entered: bool = False                # the snap=False hooks have run
    web: dict[str, Any] | None = None    # a web endpoint's spec (surge.sdk.web.WebSpec JSON)
    # a class's web methods: method name → spec; its containers serve them all (surge.runtime.web)
    web_methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def any_async(self) -> bool:
        return any(t.is_async for t in self.targets.values())

    @classmethod
    def load(cls, spec: dict[str, Any], params: bytes) -> Service:
        """Import, build and run every ``@enter`` hook: a container that starts on its own."""
        service = cls.prepare(spec, params)
        service.enter()
        return service

    @classmethod
    def prepare(cls, spec: dict[str, Any], params: bytes, check: StepCheck | None = None) -> Service:
        """Import the module, build the class's object and run its ``@enter(snap=True)`` hooks."""
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
        if check is not None:
            check(f"the import of module {module!r}")
        max_inputs = int(spec.get("options", {}).get("max_inputs", 1))
        opts = spec.get("options", {})
        batch = None
        if opts.get("batch_max_size"):     # @surge.batched (a class has at most that one method)
            batch = (int(opts["batch_max_size"]), float(opts.get("batch_wait_ms") or 0) / 1000.0)
        if spec.get("cls"):
            handle = app._classes.get(spec["cls"])
            if handle is None or handle.user_cls is None:
                raise errors.NotFoundError(f"class {spec['cls']!r} is not defined in module {module!r}")
            values = dict(serialization.loads(params)) if params else {}
            # an HTTP job names no parameters: the declared defaults apply (a required one is an error)
            values = resolve_params(handle.user_cls.__name__, parameters_of(handle.user_cls), values)
            t1 = time.perf_counter()
            obj = build_instance(handle.user_cls, values)
            if check is not None:
                check(f"{handle.user_cls.__name__}.__init__")
            for hook in hooks_of(type(obj), "enter", snap=True):
                hook(obj)
                if check is not None:
                    check(f"the hook {handle.user_cls.__name__}.{hook.__name__} (@surge.enter(snap=True))")
            phases["enter_snap"] = time.perf_counter() - t1
            targets = {name: Target(getattr(obj, name), info.is_generator, info.is_async)
                       for name, info in handle._methods.items()}
            web_methods = {name: info.extra["web"] for name, info in handle._methods.items() if "web" in info.extra}
            return cls(targets, obj, max_inputs, phases, batch, web_methods=web_methods)
        info = app._infos.get(spec["tag"])
        if info is None or info.raw is None:
            raise errors.NotFoundError(f"function {spec['tag']!r} is not defined in module {module!r}")
        return cls({"": Target(info.raw, info.is_generator, info.is_async)}, None, max_inputs, phases, batch,
                   entered=True, web=spec.get("web"))

    def enter(self) -> None:
        """Run the ``@enter(snap=False)`` hooks (once)."""
        if self.entered:
            return
        self.entered = True
        t0 = time.perf_counter()
        for hook in hooks_of(type(self.instance), "enter", snap=False):
            hook(self.instance)
        self.phases["enter"] = time.perf_counter() - t0

    def target(self, method: str | None) -> Target:
        t = self.targets.get(method or "")
        if t is None:
            raise errors.NotFoundError(f"no method {method!r} in this container")
        return t

    def close(self) -> None:
        if self.instance is not None:
            run_exit_hooks(self.instance)

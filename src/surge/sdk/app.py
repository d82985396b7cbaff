"""``surge.App``: groups functions and classes, runs them ephemerally or deploys them."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from surge import errors
from surge.sdk import context
from surge.sdk.cls import Cls
from surge.sdk.function import Function, FunctionInfo
from surge.sdk.options import FunctionOptions, validate_options
from surge.sdk.partial import batching_of_class
from surge.sdk.schedule import schedule_spec
from surge.sdk.secret import Secret, secret_layers

_REGISTRY: list[App] = []   # every App created in this process (containers look functions up here)


def in_container() -> bool:
    return os.environ.get("SURGE_CONTAINER_ID") is not None


def find_app(name: str | None, module: str) -> App:
    """The App that registered functions from ``module`` (and has ``name`` when given)."""
    for app in reversed(_REGISTRY):
        if (name is None or app.name == name) and any(
                i.module == module for i in app._infos.values()):
            return app
    raise errors.NotFoundError(f"no surge.App named {name!r} is defined in module {module!r}")


def _real_module_name(f: Any) -> str:
    mod = getattr(f, "__module__", None) or "__main__"
    if mod == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            return str(spec.name)
        file = getattr(main, "__file__", None)
        if file:
            return os.path.splitext(os.path.basename(str(file)))[0]
    return str(mod)


def _check_importable(obj: Any, what: str) -> None:
    qual = getattr(obj, "__qualname__", "")
    if "<locals>" in qual or getattr(obj, "__name__", "") == "<lambda>":
        raise errors.InvalidError(
            f"{what} {qual!r} cannot be used: containers import your code by module and name, so it "
            "must be defined at the top level of a module (not nested inside a function, not a lambda)")


def _with_concurrency(opts: FunctionOptions, obj: Any) -> FunctionOptions:
    """Apply a ``@surge.concurrent`` placed on the function or class, if any."""
    conc = getattr(obj, "__surge_concurrent__", None)
    return opts.with_concurrency(*conc) if conc else opts


class App:
    """A named group of functions and classes.

    >>> app = surge.App("demo")
    >>> @app.function(gpu="A100-80GB", timeout=60)
    ... def embed(text: str) -> list[float]: ...
    """

    def __init__(self, name: str | None = None, *, image: Any = None, secrets: list[Secret] | None = None,
                 env: dict[str, str] | None = None, include_source: bool = True,
                 volumes: dict[str, Any] | None = None) -> None:
        from surge.sdk.image import check_image
        from surge.sdk.volume import check_volumes

        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise errors.InvalidError(f"App(name={name!r}): the name must be a non-empty string")
        self._name = name
        self.image = check_image(image, "App")
        self._volumes = check_volumes(volumes, "App")
        self._images: dict[str, Any] = {}      # function tag -> its surge.Image (built at publish)
        self._env: dict[str, str] = {}
        for s in secrets or []:
            if not isinstance(s, Secret):
                raise errors.InvalidError(f"App(secrets=...) takes surge.Secret objects, got {type(s).__name__}")
            self._env.update(s.env)
        self._env.update(validate_options(env=env).env if env else {})
        self._layers = secret_layers(secrets, env)   # names and keys in override order (no values)
        self._infos: dict[str, FunctionInfo] = {}
        self._functions: dict[str, Function] = {}
        self._classes: dict[str, Cls] = {}
        self._local_entrypoints: dict[str, Callable[..., Any]] = {}
        self._function_ids: dict[str, str] = {}
        self._app_id: str | None = None
        _REGISTRY.append(self)

    @property
    def name(self) -> str | None:
        if self._name:
            return self._name
        mods = {i.module for i in self._infos.values()}
        return mods.pop().rsplit(".", 1)[-1] if len(mods) == 1 else None

    @property
    def app_id(self) -> str | None:
        return self._app_id

    @property
    def registered_functions(self) -> dict[str, Function]:
        return dict(self._functions)

    @property
    def registered_classes(self) -> dict[str, Cls]:
        return dict(self._classes)

    @property
    def registered_entrypoints(self) -> dict[str, Callable[..., Any]]:
        return dict(self._local_entrypoints)

    def _options(self, kwargs: dict[str, Any], secrets: list[Secret] | None,
                 env: dict[str, str] | None) -> FunctionOptions:
        merged = dict(self._env)
        for s in secrets or []:
            if not isinstance(s, Secret):
                raise errors.InvalidError(f"secrets=[...] takes surge.Secret objects, got {type(s).__name__}")
            merged.update(s.env)
        merged.update(env or {})
        return validate_options(env=merged or None, **kwargs)

    def _add_secrets(self, info: FunctionInfo, secrets: list[Secret] | None, env: dict[str, str] | None) -> None:
        """Named secrets are resolved by the server at container start: record them, in order."""
        layers = self._layers + secret_layers(secrets, env)
        if any("name" in layer for layer in layers):
            info.extra["secrets"] = layers

    def _register(self, info: FunctionInfo) -> None:
        if info.tag in self._infos and not in_container():
            raise errors.InvalidError(f"app {self.name!r} already has a function named {info.tag!r}; "
                                      "use name= to register it under another name")
        self._infos[info.tag] = info

    def _add_web(self, info: FunctionInfo, f: Callable[..., Any]) -> None:
        """Web endpoint marks (``@surge.fastapi_endpoint`` ...): label filled in, unique in the app."""
        from surge.sdk.web import check_unique_labels, endpoint_spec

        spec = endpoint_spec(f, info.tag)
        if spec is None:
            return
        if getattr(f, "__surge_batched__", None):
            raise errors.InvalidError(f"{info.tag}: a web endpoint cannot be @surge.batched")
        if not in_container():
            from surge.sdk.web import WebSpec

            others = [(i.tag, WebSpec.from_json(i.extra["web"])) for i in self._infos.values()
                      if "web" in i.extra and i.tag != info.tag]
            check_unique_labels([*others, (info.tag, spec)])
        info.extra["web"] = spec.to_json()

    # -- decorators ----------------------------------------------------------------------------
    def function(self, _f: Any = None, *, secrets: list[Secret] | None = None, env: dict[str, str] | None = None,
                 image: Any = None, serialized: bool = False, schedule: Any = None,
                 volumes: dict[str, Any] | None = None,
                 **options: Any) -> Callable[[Callable[..., Any]], Function]:
        """Register a function to run in containers. Options (all keyword-only, validated here):
        gpu, cpu, memory, timeout, startup_timeout, retries, min_containers, max_containers,
        buffer_containers, scaledown_window, env, secrets, name, enable_memory_snapshot,
        schedule (``surge.Cron`` / ``surge.Period``; deployed apps only)."""
        if _f is not None:
            raise errors.InvalidError("@app.function needs parentheses: write @app.function() "
                                      "(did you forget parentheses?)")
        if serialized:
            raise errors.InvalidError("serialized=True is not supported: surge imports functions by "
                                      "module, so define them at the top level of a module")
        opts = self._options(options, secrets, env)
        environment = self._environment(image, volumes, "@app.function")

        def deco(f: Callable[..., Any]) -> Function:
            if isinstance(f, Function | Cls):
                raise errors.InvalidError(f"{f!r} is already registered; apply @app.function once")
            if inspect.isclass(f):
                raise errors.InvalidError(f"{f.__name__} is a class: use @app.cls() for classes")
            if not callable(f):
                raise errors.InvalidError(f"@app.function() decorates functions, got {type(f).__name__}")
            _check_importable(f, "function")
            o = _with_concurrency(opts, f)
            batch = getattr(f, "__surge_batched__", None)
            if batch:
                if getattr(f, "__surge_concurrent__", None):
                    raise errors.InvalidError(f"{f.__name__}: @surge.batched and @surge.concurrent cannot be "
                                              "combined; a batch already runs many inputs at once")
                o = o.with_batching(*batch)
            info = FunctionInfo.from_callable(f, o.name or f.__name__, o, _real_module_name(f))
            self._add_web(info, f)
            self._add_secrets(info, secrets, env)
            if schedule is not None:
                info.extra["schedule"] = schedule_spec(schedule, f, info.tag)
            self._apply_environment(info, environment)
            self._register(info)
            handle = Function(info, self)
            self._functions[info.tag] = handle
            return handle

        return deco

    def cls(self, _c: Any = None, *, secrets: list[Secret] | None = None, env: dict[str, str] | None = None,
            image: Any = None, serialized: bool = False, volumes: dict[str, Any] | None = None,
            **options: Any) -> Callable[[type], Cls]:
        """Register a class whose ``@surge.method()`` methods run in containers that keep the
        object alive across inputs (load a model once in ``@surge.enter()``)."""
        if _c is not None:
            raise errors.InvalidError("@app.cls needs parentheses: write @app.cls() (did you forget parentheses?)")
        if "schedule" in options:
            raise errors.InvalidError("schedule= is supported on @app.function, not @app.cls: schedule a "
                                      "function that calls the method")
        opts = self._options(options, secrets, env)
        environment = self._environment(image, volumes, "@app.cls")

        def deco(user_cls: type) -> Cls:
            if not inspect.isclass(user_cls):
                raise errors.InvalidError(f"@app.cls() decorates classes, got {type(user_cls).__name__}")
            _check_importable(user_cls, "class")
            o = batching_of_class(user_cls, _with_concurrency(opts, user_cls))   # sdk/partial.py
            cls_name = o.name or user_cls.__name__
            module = _real_module_name(user_cls)
            methods: dict[str, FunctionInfo] = {}
            web_methods: list[tuple[str, Any]] = []
            for attr, value in vars(user_cls).items():
                if callable(value) and getattr(value, "__surge_web__", None) is not None:
                    web_methods.append((attr, value))    # served by the class's containers (sdk/web.py)
                    continue
                if callable(value) and (hasattr(value, "__surge_method__") or hasattr(value, "__surge_batched__")):
                    info = FunctionInfo.from_callable(value, f"{cls_name}.{attr}", o, module,
                                                      cls_name=cls_name, method_name=attr)
                    if getattr(value, "__surge_method__", {}).get("is_generator") is not None:
                        info.is_generator = bool(value.__surge_method__["is_generator"])
                    methods[attr] = info
            from surge.sdk.web import class_web_extra

            for attr, value in web_methods:
                info = FunctionInfo.from_callable(value, f"{cls_name}.{attr}", o, module,
                                                  cls_name=cls_name, method_name=attr)
                self._add_web(info, value)
                info.extra.update(class_web_extra(user_cls, info.tag))
                methods[attr] = info
            if not methods:
                raise errors.InvalidError(f"class {user_cls.__name__} has no @surge.method(); mark the "
                                          "methods callers may run remotely")
            for info in methods.values():
                self._add_secrets(info, secrets, env)
                self._apply_environment(info, environment)
                self._register(info)
            handle = Cls(cls_name, self, methods, user_cls=user_cls)
            self._classes[cls_name] = handle
            return handle

        return deco

    def local_entrypoint(self, _f: Any = None, *, name: str | None = None) -> Callable[..., Any]:
        """Mark the function ``surge run`` calls locally; its typed parameters become CLI flags."""
        if _f is not None:
            raise errors.InvalidError("@app.local_entrypoint needs parentheses: write "
                                      "@app.local_entrypoint() (did you forget parentheses?)")

        def deco(f: Callable[..., Any]) -> Callable[..., Any]:
            self._local_entrypoints[name or f.__name__] = f
            return f

        return deco

    # -- running -------------------------------------------------------------------------------
    def _environment(self, image: Any, volumes: Any, where: str) -> tuple[Any, dict[str, Any]]:
        """``image=`` and ``volumes=`` of a decorator (with the App's as defaults), checked now."""
        from surge.core.paths import check_mounts
        from surge.sdk.image import check_image
        from surge.sdk.volume import check_volumes

        img = check_image(image, where) or self.image
        vols = {**self._volumes, **check_volumes(volumes, where)}
        check_mounts(list(vols))
        return (None if img is None or img.is_current else img), vols

    def _apply_environment(self, info: FunctionInfo, environment: tuple[Any, dict[str, Any]]) -> None:
        image, vols = environment
        if vols:
            info.extra["volumes"] = {path: v.ref() for path, v in sorted(vols.items())}
        if image is not None:
            self._images[info.tag] = image

    def _publish(self, *, deployed: bool, name: str | None = None) -> dict[str, Any]:
        from surge.sdk import source
        from surge.sdk.image import attach_images

        if not self._infos:
            raise errors.InvalidError(f"app {self.name!r} has no functions to run")
        app_name = name or self.name
        if not app_name:
            raise errors.InvalidError("give the app a name: surge.App(\"my-app\")")
        modules = {i.module for i in self._infos.values()}
        roots = {source.module_file_info(m if m in sys.modules else "__main__")[0] for m in modules}
        if len(roots) != 1:
            raise errors.InvalidError(f"functions of app {app_name!r} come from modules under different "
                                      f"directories ({sorted(map(str, roots))}); keep an app's modules together")
        root = roots.pop()
        archive, sha = source.package(root)
        client = context.get_client()
        client.put_blob(sha, archive)
        resp = client.create_app(app_name, deployed=deployed, source_hash=sha, module=sorted(modules)[0],
                                 # code_app: the App's name in the source, which containers look
                                 # up (a deploy may publish it under another name)
                                 functions=attach_images(client, [{**i.spec(), "code_app": self.name}
                                                                  for i in self._infos.values()], self._images))
        return resp

    @contextlib.contextmanager
    def run(self, *, show_logs: bool = True) -> Iterator[App]:
        """Run the app ephemerally for the duration of the block (an embedded control plane is
        started if no server is configured). Inside a container this does nothing."""
        if in_container() or self._app_id is not None:
            yield self
            return
        resp = self._publish(deployed=False)
        self._app_id = resp["app_id"]
        self._function_ids = dict(resp["functions"])
        from surge.sdk.logs import LogFollower

        follower = LogFollower(self._app_id) if show_logs else None
        try:
            yield self
        finally:
            try:
                context.get_client().stop_app(self._app_id)
            finally:
                if follower is not None:
                    follower.close()
                self._app_id = None
                self._function_ids = {}

    def deploy(self, name: str | None = None) -> dict[str, Any]:
        """Publish a new immutable version; returns ``{"app_id", "version", "functions"}``."""
        return self._publish(deployed=True, name=name)

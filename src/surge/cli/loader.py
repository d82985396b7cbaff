"""Finding the app in ``path/to/app.py[::name]`` and turning an entrypoint's signature into flags."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surge.errors import InvalidError
from surge.sdk.app import App


def import_app_file(ref: str) -> tuple[App, str | None]:
    """Import the file as a module named after it (so containers import the same name) and
    return its App and the ``::name`` part, if any."""
    path_s, _, name = ref.partition("::")
    path = Path(path_s).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise InvalidError(f"{path_s!r} is not a Python file; usage: surge run path/to/app.py[::function]")
    module_name = path.stem
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except InvalidError:
        raise
    except Exception as exc:
        raise InvalidError(f"importing {path_s} failed:\n{_user_traceback(exc, path)}") from None
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if not apps:
        raise InvalidError(f"{path_s} defines no surge.App (expected e.g. `app = surge.App(\"name\")`)")
    if len(apps) > 1:
        for a in apps:
            if name and (name in a.registered_entrypoints or name in a.registered_functions):
                return a, name or None
        raise InvalidError(f"{path_s} defines {len(apps)} apps; keep one App per file")
    return apps[0], name or None


def _user_traceback(exc: BaseException, path: Path) -> str:
    """The traceback from the first frame in the user's file on (importlib's and surge's frames
    say nothing to the user)."""
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def pick_target(app: App, name: str | None) -> tuple[str, Any]:
    """``("entrypoint", f)`` or ``("function", handle)`` for ``surge run``."""
    eps, fns = app.registered_entrypoints, app.registered_functions
    if name:
        if name in eps:
            return "entrypoint", eps[name]
        if name in fns:
            return "function", fns[name]
        known = ", ".join(sorted([*eps, *fns])) or "none"
        raise InvalidError(f"no entrypoint or function named {name!r} (available: {known})")
    if len(eps) == 1:
        return "entrypoint", next(iter(eps.values()))
    if len(eps) > 1:
        raise InvalidError(f"several local entrypoints ({', '.join(sorted(eps))}); pick one with "
                           "app.py::name")
    if len(fns) == 1:
        return "function", next(iter(fns.values()))
    raise InvalidError("no @app.local_entrypoint() and several functions; pick one with app.py::name "
                       f"(functions: {', '.join(sorted(fns))})")


def _convert(name: str, raw: str, annotation: Any) -> Any:
    ann = annotation if isinstance(annotation, type) else {"int": int, "float": float, "str": str,
                                                           "bool": bool}.get(str(annotation), str)
    if ann is bool:
        if raw.lower() in ("1", "true", "yes", "y"):
            return True
        if raw.lower() in ("0", "false", "no", "n"):
            return False
        raise InvalidError(f"--{name} expects true or false, got {raw!r}")
    try:
        return ann(raw) if ann in (int, float, str) else raw
    except ValueError:
        raise InvalidError(f"--{name} expects {ann.__name__}, got {raw!r}") from None


def parse_flags(f: Callable[..., Any], argv: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """``--name value`` / ``--flag`` / ``--no-flag`` for each parameter of ``f``; ``*args`` takes the rest."""
    sig = inspect.signature(f)
    params = {p.name.replace("_", "-"): p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var = next((p for p in sig.parameters.values() if p.kind == p.VAR_POSITIONAL), None)
    if var is not None:
        return list(argv), {}
    kwargs: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise InvalidError(f"unexpected argument {arg!r}; pass parameters as --name value")
        key, eq, value = arg[2:].partition("=")
        neg = key.startswith("no-") and key[3:] in params and params[key[3:]].annotation in (bool, "bool")
        p = params.get(key[3:] if neg else key)
        if p is None:
            known = ", ".join(f"--{k}/--no-{k}" if params[k].annotation in (bool, "bool") else f"--{k}"
                              for k in params) or "none"
            raise InvalidError(f"unknown option --{key} (options: {known})")
        if p.annotation in (bool, "bool") and not eq:
            kwargs[p.name] = not neg
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise InvalidError(f"--{key} needs a value")
            value = argv[i + 1]
            i += 1
        kwargs[p.name] = _convert(key, value, p.annotation)
        i += 1
    missing = [n for n, p in params.items() if p.default is p.empty and p.name not in kwargs]
    if missing:
        raise InvalidError(f"missing required option(s): {', '.join('--' + m for m in missing)}")
    return [], kwargs

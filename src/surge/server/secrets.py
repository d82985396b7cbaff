"""Secrets on the control plane: named secrets of a workspace, inline values sealed at deploy, the
environment a container starts with, and redaction of secret values from captured logs.

Where a value can be, and in what form:

- in the database: only sealed (``SecretBox``: AES-GCM under ``SURGE_HOME/secrets.key``), in the
  ``secrets`` table (named) or as ``sealed_env`` in a function's spec (inline ``from_dict`` /
  ``env=`` values, whose ``options.env`` is emptied before the version is stored);
- in memory: while a container is being launched (its env) and in the redaction table below;
- in a container's environment: only for functions that name the secret.

No route returns a value, and error messages name secrets and keys, never values.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from surge import errors
from surge.core.models import TerminalReason
from surge.sdk.secret import check_env, check_secret_name
from surge.server.secretbox import SecretBox
from surge.store.base import SecretRow, Store

if TYPE_CHECKING:
    from surge.server.dispatcher import Dispatcher
    from surge.server.pools import Pool

# Values shorter than this are not redacted from logs: "1" or "true" would blank out ordinary output.
REDACT_MIN_CHARS = 6
REDACTED = "***"
# A container that cannot get its secrets waits this long before the pool tries to start another.
LAUNCH_BACKOFF = 30.0


def _named_ad(workspace: str, name: str) -> bytes:
    return f"surge-secret\0{workspace}\0{name}".encode()


def _inline_ad(workspace: str, app: str, tag: str) -> bytes:
    return f"surge-inline-env\0{workspace}\0{app}\0{tag}".encode()


def merge_env(inline: Mapping[str, str], layers: Sequence[Mapping[str, Any]] | None,
              named: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The container's secret environment: each layer in order (a named secret's values, or the
    listed keys of the inline values), later layers overriding earlier ones. Without layers (no
    named secret involved) the inline values are the whole environment."""
    if not layers:
        return dict(inline)
    env: dict[str, str] = {}
    covered: set[str] = set()
    for layer in layers:
        if "name" in layer:
            env.update(named[str(layer["name"])])
        else:
            keys = [str(k) for k in layer.get("keys", [])]
            env.update({k: inline[k] for k in keys if k in inline})
            covered.update(keys)
    env.update({k: v for k, v in inline.items() if k not in covered})
    return env


def check_layers(layers: object, inline_keys: set[str], tag: str) -> list[dict[str, Any]]:
    """A function spec's ``secrets`` list, as the SDK writes it (``Secret.layer``)."""
    if layers is None:
        return []
    if not isinstance(layers, list):
        raise errors.InvalidError(f"function {tag!r}: secrets must be a list, got {type(layers).__name__}")
    out = []
    for layer in layers:
        if isinstance(layer, dict) and "name" in layer:
            required = layer.get("required_keys") or []
            if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
                raise errors.InvalidError(f"function {tag!r}: secret {layer['name']!r}: required_keys must "
                                          "be a list of names")
            out.append({"name": check_secret_name(layer["name"]), "required_keys": required})
        elif isinstance(layer, dict) and isinstance(layer.get("keys"), list):
            unknown = sorted(str(k) for k in layer["keys"] if k not in inline_keys)
            if unknown:
                raise errors.InvalidError(f"function {tag!r}: secret keys {unknown} have no values in options.env")
            out.append({"keys": [str(k) for k in layer["keys"]]})
        else:
            raise errors.InvalidError(f"function {tag!r}: each secret is {{\"name\": ...}} or {{\"keys\": [...]}}")
    return out


class Secrets:
    def __init__(self, store: Store, box: SecretBox, dispatcher: Dispatcher | None = None) -> None:
        self.store = store
        self.box = box
        self.dispatcher = dispatcher
        self._redact: dict[str, re.Pattern[str] | None] = {}   # function id -> its values, to hide in logs

    # -- named secrets (routes) ----------------------------------------------------------------
    async def create(self, workspace: str, name: str, env: Mapping[str, str], *, overwrite: bool,
                     now: float | None = None) -> dict[str, Any]:
        check_secret_name(name)
        values = check_env(dict(env), f"secret {name!r}")
        if not values:
            raise errors.InvalidError(f"secret {name!r} needs at least one KEY=VALUE")
        now = time.time() if now is None else now
        sealed = self.box.seal(json.dumps(values).encode(), _named_ad(workspace, name))
        row = SecretRow(workspace=workspace, name=name, key_names=sorted(values), ciphertext=sealed,
                        created_at=now, updated_at=now)
        created = await self.store.put_secret(row, overwrite=overwrite)
        return {**self.summary(row), "created": created}

    async def listing(self, workspace: str) -> list[dict[str, Any]]:
        return [self.summary(r) for r in await self.store.list_secrets(workspace)]

    async def delete(self, workspace: str, name: str) -> None:
        if not await self.store.delete_secret(workspace, name):
            raise errors.NotFoundError(f"no secret named {name!r} in workspace {workspace!r}")

    @staticmethod
    def summary(row: SecretRow) -> dict[str, Any]:
        """What a listing shows: never the values."""
        return {"name": row.name, "keys": list(row.key_names), "created_at": row.created_at,
                "updated_at": row.updated_at}

    async def values(self, workspace: str, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Decrypted named secrets; ``NotFoundError`` naming the first missing one."""
        rows = {r.name: r for r in await self.store.get_secrets(workspace, sorted(set(names)))}
        out = {}
        for name in names:
            row = rows.get(name)
            if row is None:
                raise errors.NotFoundError(
                    f"secret {name!r} not found in workspace {workspace!r}: create it with "
                    f"`surge secret create {name} KEY=VALUE ...`")
            try:
                out[name] = json.loads(self.box.open(row.ciphertext, _named_ad(workspace, name)))
            except errors.InvalidError as exc:
                raise errors.InvalidError(f"secret {name!r}: {exc} (was SURGE_HOME/secrets.key replaced?)") from None
        return out

    # -- deploy --------------------------------------------------------------------------------
    async def seal_functions(self, workspace: str, app: str, functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Function specs as they may be stored: inline env values sealed (``sealed_env``), their
        names kept (``env_keys``), named secrets checked to exist with their required keys."""
        out = []
        named: dict[str, set[str]] = {}
        for f in functions:
            tag = str(f.get("tag"))
            options = dict(f.get("options") or {})
            inline = dict(options.get("env") or {})
            layers = check_layers(f.get("secrets"), set(inline), tag)
            for layer in layers:
                if "name" in layer:
                    named.setdefault(layer["name"], set()).update(layer["required_keys"])
            spec = {**f, "options": {**options, "env": {}}, "env_keys": sorted(inline)}
            spec.pop("sealed_env", None)
            if layers:
                spec["secrets"] = layers
            if inline:
                sealed = self.box.seal(json.dumps(inline).encode(), _inline_ad(workspace, app, tag))
                spec["sealed_env"] = base64.b64encode(sealed).decode()
            out.append(spec)
        if named:
            rows = {r.name: r for r in await self.store.get_secrets(workspace, sorted(named))}
            for name, required in sorted(named.items()):
                row = rows.get(name)
                if row is None:
                    raise errors.NotFoundError(
                        f"secret {name!r} not found in workspace {workspace!r}: create it with "
                        f"`surge secret create {name} KEY=VALUE ...` before deploying")
                missing = sorted(required - set(row.key_names))
                if missing:
                    raise errors.NotFoundError(f"secret {name!r} has no key(s) {', '.join(missing)} "
                                               f"(it has: {', '.join(row.key_names)})")
        return out

    # -- launch --------------------------------------------------------------------------------
    async def launch_env(self, pool: Pool, app: str) -> dict[str, str]:
        """The secret environment of a new container of ``pool``. If it cannot be had (a named
        secret was deleted since the deploy) the pool's queued inputs fail with the reason."""
        spec = pool.function.spec
        try:
            env = await self._env_for(pool.workspace, app, spec)
        except errors.Error as exc:
            if self.dispatcher is not None:
                await self.dispatcher.fail_queued(pool, TerminalReason.INIT_FAILURE, f"container setup: {exc}")
            pool.start_blocked_until = time.time() + LAUNCH_BACKOFF
            raise
        hide = sorted({v for v in env.values() if len(v) >= REDACT_MIN_CHARS}, key=len, reverse=True)
        self._redact[pool.function.id] = re.compile("|".join(map(re.escape, hide))) if hide else None
        return env

    async def _env_for(self, workspace: str, app: str, spec: Mapping[str, Any]) -> dict[str, str]:
        inline: dict[str, str] = {}
        if spec.get("sealed_env"):
            raw = self.box.open(base64.b64decode(spec["sealed_env"]), _inline_ad(workspace, app, str(spec.get("tag"))))
            inline = json.loads(raw)
        layers = spec.get("secrets") or []
        names = [str(layer["name"]) for layer in layers if "name" in layer]
        named = await self.values(workspace, names) if names else {}
        return merge_env(inline, layers, named)

    # -- logs ----------------------------------------------------------------------------------
    def redact(self, function_id: str, text: str) -> str:
        """``text`` with exact occurrences of the function's secret values replaced by ``***``
        (defence in depth: a function that prints its secret does not store it in the logs)."""
        pattern = self._redact.get(function_id)
        return pattern.sub(REDACTED, text) if pattern is not None and text else text

"""``surge.Secret``: key/value pairs injected into containers as environment variables.

Two kinds, as in Modal:

- **named** secrets (``Secret.from_name("hf")``) are created once with ``surge secret create`` and
  resolved by the control plane when a container starts; only the name travels with the app;
- **inline** secrets (``from_dict``, ``from_dotenv``, ``from_local_environ``, and ``env=``) carry
  their values with the deploy; the control plane encrypts them before storing the app version.

Either way the values are stored encrypted (AES-GCM) and reach only the containers of functions
that name them. Later secrets in a list override earlier ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from surge.errors import InvalidError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_KEY_CHARS = 16_384
MAX_VALUE_CHARS = 32_768


def check_secret_name(name: object) -> str:
    """A secret's name: 1–64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or not SECRET_NAME.match(name):
        raise InvalidError(f"secret name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (e.g. \"hf-token\")")
    return name


def check_env(env: object, what: str = "secret") -> dict[str, str]:
    """Environment variable names and string values, within Modal's size limits. Messages name
    the key, never the value."""
    if not isinstance(env, dict):
        raise InvalidError(f"{what}: expected a dict of environment variable names to string values, "
                           f"got {type(env).__name__}")
    for k, v in env.items():
        if not isinstance(k, str) or not _KEY.match(k):
            raise InvalidError(f"{what} key {k!r} is not a valid environment variable name "
                               "(letters, digits and _, not starting with a digit)")
        if not isinstance(v, str):
            raise InvalidError(f"{what} value for {k!r} must be a str, got {type(v).__name__}")
        if len(k) > MAX_KEY_CHARS or len(v) > MAX_VALUE_CHARS:
            raise InvalidError(f"{what} {k!r} is too long (keys ≤ 16,384, values ≤ 32,768 characters)")
    return dict(env)


class Secret:
    """Environment variables for containers; later secrets in a list override earlier ones.

    >>> surge.Secret.from_name("hf")                  # created with `surge secret create hf HF_TOKEN=...`
    >>> surge.Secret.from_dict({"HF_TOKEN": "..."})    # inline: encrypted by the server on deploy
    """

    def __init__(self, env: dict[str, str], *, name: str | None = None,
                 required_keys: tuple[str, ...] = ()) -> None:
        self.env = check_env(env)
        self.name = name
        self.required_keys = required_keys

    def __repr__(self) -> str:
        if self.name is not None:
            return f"surge.Secret.from_name({self.name!r})"
        return f"surge.Secret(keys={sorted(self.env)})"

    def layer(self) -> dict[str, Any]:
        """How this secret is described in a function's spec (names and keys, never values)."""
        if self.name is not None:
            return {"name": self.name, "required_keys": list(self.required_keys)}
        return {"keys": sorted(self.env)}

    @classmethod
    def from_name(cls, name: str, *, environment_name: str | None = None,
                  required_keys: list[str] | tuple[str, ...] = ()) -> Secret:
        """A secret created with ``surge secret create NAME KEY=VALUE...``, looked up by the server
        when a container starts. A missing name (or a missing ``required_keys`` key) fails the
        deploy, naming the secret."""
        check_secret_name(name)
        if environment_name is not None:
            raise InvalidError("Secret.from_name(environment_name=...): surge has no environments; "
                               "secrets belong to the workspace of your token")
        keys = tuple(required_keys)
        for k in keys:
            if not isinstance(k, str) or not _KEY.match(k):
                raise InvalidError(f"Secret.from_name({name!r}, required_keys=...): {k!r} is not a valid "
                                   "environment variable name")
        return cls({}, name=name, required_keys=keys)

    @classmethod
    def from_dict(cls, env: dict[str, str]) -> Secret:
        return cls(env)

    @classmethod
    def from_local_environ(cls, env_keys: list[str]) -> Secret:
        """The named variables of the deploying process's environment."""
        if _in_container():   # the values came with the deploy; here the module is only imported
            return cls({k: os.environ[k] for k in env_keys if k in os.environ})
        missing = [k for k in env_keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Secret.from_local_environ: not set locally: {', '.join(missing)}")
        return cls({k: os.environ[k] for k in env_keys})

    @classmethod
    def from_dotenv(cls, path: str | os.PathLike[str] = ".env", *, filename: str = ".env") -> Secret:
        """``KEY=VALUE`` lines of a dotenv file (``path`` may be the file or its directory)."""
        file = Path(path)
        if file.is_dir():
            file = file / filename
        try:
            text = file.read_text()
        except OSError as exc:
            if _in_container():   # dotfiles are not uploaded: the values came with the deploy
                return cls({})
            raise InvalidError(f"Secret.from_dotenv: cannot read {file}: {exc.strerror}") from None
        return cls(parse_dotenv(text))


def _in_container() -> bool:
    return os.environ.get("SURGE_CONTAINER_ID") is not None


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``export``, comments, blank lines and matching quotes are handled."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.removeprefix("export ").split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        env[k.strip()] = v
    return env


def secret_layers(secrets: list[Secret] | None, env: dict[str, str] | None) -> list[dict[str, Any]]:
    """The override order of ``secrets=[...]`` then ``env=``, as names and keys (no values)."""
    layers = [s.layer() for s in secrets or [] if isinstance(s, Secret)]
    if env:
        layers.append({"keys": sorted(env)})
    return layers

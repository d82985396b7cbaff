"""``surge.Secret``: key/value pairs injected into containers as environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

from surge.errors import InvalidError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secret:
    """Environment variables for containers; later secrets in a list override earlier ones.

    >>> surge.Secret.from_dict({"HF_TOKEN": "..."})
    """

    def __init__(self, env: dict[str, str]) -> None:
        for k, v in env.items():
            if not isinstance(k, str) or not _NAME.match(k):
                raise InvalidError(f"secret key {k!r} is not a valid environment variable name "
                                   "(letters, digits and _, not starting with a digit)")
            if not isinstance(v, str):
                raise InvalidError(f"secret value for {k!r} must be a str, got {type(v).__name__}")
            if len(k) > 16384 or len(v) > 32768:
                raise InvalidError(f"secret {k!r} is too long (keys ≤ 16,384, values ≤ 32,768 characters)")
        self.env = dict(env)

    def __repr__(self) -> str:
        return f"surge.Secret(keys={sorted(self.env)})"

    @classmethod
    def from_dict(cls, env: dict[str, str]) -> Secret:
        return cls(env)

    @classmethod
    def from_local_environ(cls, env_keys: list[str]) -> Secret:
        missing = [k for k in env_keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Secret.from_local_environ: not set locally: {', '.join(missing)}")
        return cls({k: os.environ[k] for k in env_keys})

    @classmethod
    def from_dotenv(cls, path: str | os.PathLike[str] = ".env") -> Secret:
        env: dict[str, str] = {}
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.removeprefix("export ").split("=", 1)
            env[k.strip()] = v.strip().strip("'\"")
        return cls(env)

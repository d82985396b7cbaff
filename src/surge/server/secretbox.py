"""Encryption at rest for secret values: AES-256-GCM under a key kept outside the database.

The key is 32 random bytes in ``SURGE_HOME/secrets.key``, created on first start with mode 0600
(written to a temporary file and linked into place, so two processes racing to create it agree
on one key). A key file that group or others may read, or that another user owns, stops the
server with the fix in the message: the key is what makes a stolen database useless.

A sealed value is ``version (1 byte) | nonce (12 bytes) | ciphertext+tag``, with a fresh random
nonce per value and *associated data* naming what the value belongs to (workspace and secret
name), so a ciphertext copied onto another secret's row does not decrypt.

>>> box = SecretBox(bytes(32))
>>> box.open(box.seal(b"s3cret", b"ws/hf"), b"ws/hf")
b's3cret'
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from surge import errors

VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


class KeyFileError(errors.Error):
    """The key file is unsafe or unreadable; the server refuses to start."""

    code = "key_file"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"a secrets key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # a fingerprint to notice a replaced key file (not the key: an HMAC of a constant)
        self.key_id = hmac.new(key, b"surge secrets key id", hashlib.sha256).hexdigest()[:16]

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        """The plaintext; ``InvalidError`` if the value was altered, moved to another secret, or
        sealed under another key (the message never includes the bytes)."""
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != VERSION:
            raise errors.InvalidError("a sealed secret value is malformed")
        nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, associated)
        except InvalidTag:
            raise errors.InvalidError("a secret value could not be decrypted: it was sealed under another "
                                      "secrets.key or for another secret") from None

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Load the key at ``path``, creating it (mode 0600) if it does not exist."""
        if not path.exists():
            _create_key(path)
        _check_key_file(path)
        return cls(path.read_bytes())


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)   # fails if another process created the key first: theirs wins
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _check_key_file(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyFileError(f"cannot read the secrets key {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(f"the secrets key {path} has mode {mode:04o}: group and others can read it. "
                           f"Make it private with `chmod 600 {path}`, then start the server again")
    if st.st_uid != os.getuid():
        raise KeyFileError(f"the secrets key {path} belongs to uid {st.st_uid}, not to this user "
                           f"(uid {os.getuid()}); run the server as its owner or `chown` it")
    if st.st_size != KEY_BYTES:
        raise KeyFileError(f"the secrets key {path} is {st.st_size} bytes, not {KEY_BYTES}: it is damaged. "
                           "Restore it from a backup (secrets sealed under it cannot be read without it)")

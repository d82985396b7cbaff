"""Secrets at rest: the AES-GCM box and its key file, the environment merge and log redaction."""

from __future__ import annotations

import doctest
import os
import threading
from pathlib import Path

import pytest

import surge.server.secretbox
from surge.errors import InvalidError
from surge.sdk.secret import Secret, check_env, check_secret_name, parse_dotenv, secret_layers
from surge.server.secretbox import KEY_BYTES, KeyFileError, SecretBox
from surge.server.secrets import REDACTED, Secrets, check_layers, merge_env
from surge.testing import memory_store


def test_doctest() -> None:
    assert doctest.testmod(surge.server.secretbox).failed == 0


def test_seal_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    box = SecretBox(os.urandom(KEY_BYTES))
    a, b = box.seal(b"value", b"ws\0hf"), box.seal(b"value", b"ws\0hf")
    assert a != b and a[1:13] != b[1:13]               # nonce per value
    assert b"value" not in a
    assert box.open(a, b"ws\0hf") == box.open(b, b"ws\0hf") == b"value"


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s[:-1] + bytes([s[-1] ^ 1]), "could not be decrypted"),     # altered
    (lambda s: s[:20] + bytes([s[20] ^ 1]) + s[21:], "could not be decrypted"),
    (lambda s: b"\x02" + s[1:], "malformed"),                             # unknown version
    (lambda s: s[:10], "malformed"),                                      # truncated
])
def test_altered_values_are_refused(mutate: object, message: str) -> None:
    box = SecretBox(os.urandom(KEY_BYTES))
    sealed = box.seal(b"value", b"ad")
    with pytest.raises(InvalidError, match=message):
        box.open(mutate(sealed), b"ad")  # type: ignore[operator]


def test_a_value_moved_to_another_secret_or_key_does_not_open() -> None:
    box, other = SecretBox(os.urandom(KEY_BYTES)), SecretBox(os.urandom(KEY_BYTES))
    sealed = box.seal(b"value", b"surge-secret\0ws-a\0hf")
    with pytest.raises(InvalidError, match="another"):
        box.open(sealed, b"surge-secret\0ws-b\0hf")     # another workspace
    with pytest.raises(InvalidError, match="another"):
        other.open(sealed, b"surge-secret\0ws-a\0hf")   # another key
    assert box.key_id != other.key_id and len(box.key_id) == 16


def test_wrong_key_length() -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        SecretBox(b"short")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secrets.key"
    box = SecretBox.from_file(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and path.stat().st_size == KEY_BYTES
    sealed = box.seal(b"v", b"ad")
    assert SecretBox.from_file(path).open(sealed, b"ad") == b"v"
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]    # no temporary left behind


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    boxes: list[SecretBox] = []
    threads = [threading.Thread(target=lambda: boxes.append(SecretBox.from_file(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({b.key_id for b in boxes}) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_readable_key_file_stops_the_server(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secrets.key"
    SecretBox.from_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600 {path}"):
        SecretBox.from_file(path)


def test_a_damaged_key_file_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_bytes(b"x" * 10)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="10 bytes, not 32"):
        SecretBox.from_file(path)


def test_an_unreadable_key_path(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "secrets.key"
    path.mkdir(parents=True)   # a directory where the key should be: exists, but wrong
    with pytest.raises(KeyFileError):
        SecretBox.from_file(path)


# -- the environment a container gets ------------------------------------------------------------

@pytest.mark.parametrize("inline, layers, named, expected", [
    ({"A": "1"}, None, {}, {"A": "1"}),
    ({"A": "1"}, [], {}, {"A": "1"}),
    # named then inline: the inline value wins
    ({"A": "inline"}, [{"name": "s"}, {"keys": ["A"]}], {"s": {"A": "named", "B": "b"}}, {"A": "inline", "B": "b"}),
    # inline then named: the named value wins
    ({"A": "inline"}, [{"keys": ["A"]}, {"name": "s"}], {"s": {"A": "named"}}, {"A": "named"}),
    # two named secrets: the later wins
    ({}, [{"name": "s"}, {"name": "t"}], {"s": {"A": "s", "B": "s"}, "t": {"A": "t"}}, {"A": "t", "B": "s"}),
    # inline keys no layer mentions (env= from an older client) go last
    ({"A": "1", "Z": "z"}, [{"name": "s"}, {"keys": ["A"]}], {"s": {"Z": "named"}}, {"A": "1", "Z": "z"}),
])
def test_merge_env(inline: dict[str, str], layers: list[dict[str, object]] | None,
                   named: dict[str, dict[str, str]], expected: dict[str, str]) -> None:
    assert merge_env(inline, layers, named) == expected


def test_sdk_layers_follow_the_list_order() -> None:
    layers = secret_layers([Secret.from_name("a", required_keys=["K"]), Secret.from_dict({"B": "x", "A": "y"})],
                           {"C": "z"})
    assert layers == [{"name": "a", "required_keys": ["K"]}, {"keys": ["A", "B"]}, {"keys": ["C"]}]
    assert "x" not in repr(layers) and repr(Secret.from_dict({"B": "x"})) == "surge.Secret(keys=['B'])"
    assert repr(Secret.from_name("a")) == "surge.Secret.from_name('a')"


@pytest.mark.parametrize("layers, message", [
    ("x", "must be a list"),
    ([{"name": "bad name"}], "not valid"),
    ([{"name": "ok", "required_keys": "K"}], "required_keys must be a list"),
    ([{"keys": ["NOPE"]}], "have no values"),
    ([{"other": 1}], "each secret is"),
])
def test_check_layers_refuses(layers: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        check_layers(layers, {"A"}, "f")


def test_check_layers_accepts() -> None:
    assert check_layers(None, set(), "f") == []
    got = check_layers([{"name": "s", "required_keys": ["K"]}, {"keys": ["A"]}], {"A"}, "f")
    assert got == [{"name": "s", "required_keys": ["K"]}, {"keys": ["A"]}]


@pytest.mark.parametrize("value, message", [
    ({"1A": "v"}, "not a valid environment variable name"),
    ({"A": 5}, "must be a str"),
    ({"A": "v" * 40_000}, "too long"),
    ("A=1", "expected a dict"),
])
def test_check_env_never_quotes_values(value: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message) as err:
        check_env(value)
    assert "vvvv" not in str(err.value)


@pytest.mark.parametrize("name, ok", [("hf", True), ("hf-token.v2_x", True), ("", False), ("-x", False),
                                      ("a" * 65, False), ("has space", False), (3, False)])
def test_secret_names(name: object, ok: bool) -> None:
    if ok:
        assert check_secret_name(name) == name
    else:
        with pytest.raises(InvalidError, match="not valid"):
            check_secret_name(name)


def test_from_name_options() -> None:
    with pytest.raises(InvalidError, match="no environments"):
        Secret.from_name("x", environment_name="prod")
    with pytest.raises(InvalidError, match="not a valid environment variable name"):
        Secret.from_name("x", required_keys=["1bad"])


def test_dotenv(tmp_path: Path) -> None:
    assert parse_dotenv("# c\n\nexport A=1\nB='two = 2'\nC=\"3\"\nD='\nnoequals\n") == {
        "A": "1", "B": "two = 2", "C": "3", "D": "'"}
    (tmp_path / ".env").write_text("K=v\n")
    assert Secret.from_dotenv(tmp_path).env == {"K": "v"}
    assert Secret.from_dotenv(tmp_path / ".env").env == {"K": "v"}
    with pytest.raises(InvalidError, match="cannot read"):
        Secret.from_dotenv(tmp_path / "missing.env")


def test_redaction() -> None:
    s = Secrets(memory_store(), SecretBox(os.urandom(KEY_BYTES)))
    s._redact["fu-1"] = __import__("re").compile("hunter22|supersecret")
    assert s.redact("fu-1", "pw=hunter22 and supersecret!") == f"pw={REDACTED} and {REDACTED}!"
    assert s.redact("fu-1", "") == ""
    assert s.redact("fu-2", "hunter22") == "hunter22"      # another function's values are not known here

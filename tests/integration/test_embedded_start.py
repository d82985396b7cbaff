"""Starting the embedded server: a server that cannot start is reported with its log, and leaves
no pipe or process behind (``filterwarnings=error`` turns a leaked pipe's ResourceWarning into a
failure)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from surge import errors
from surge.sdk import embedded


def test_a_server_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(errors.UnavailableError, match="exited with code 2") as info:
        embedded.start(tmp_path / "home", extra_args=["--no-such-flag"])
    assert "--no-such-flag" in str(info.value)     # the log's tail says what was wrong
    gc.collect()                                   # a leaked stdin pipe would warn here

"""All terminal rendering: rich is imported here only, lazily, so `surge --help` stays fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        info(f"{title}: none")
        return
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("-" if v is None else str(v) for v in r))
    console = _console()
    if not console.is_terminal:   # piped: whole ids and times, not a table squeezed into 80 columns
        console.width = 1000
    console.print(t)


def info(message: str) -> None:
    # Messages are plain text (they quote user values such as "[1, 2]", which rich would read as
    # markup) and are not re-wrapped, so a long one stays one greppable line in logs and pipes.
    _console(stderr=True).print(message, markup=False, soft_wrap=True)


def error(message: str) -> None:
    from rich.text import Text

    _console(stderr=True).print(Text.assemble(("Error:", "bold red"), " ", message), soft_wrap=True)


def map_progress(total: int | None) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A progress bar for `.map()` on stderr (hidden when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = _console(stderr=True)
    if not console.is_terminal:
        return (lambda n: None), (lambda: None)
    progress = Progress(TextColumn("map"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("map", total=total)
    progress.start()
    return (lambda n: progress.advance(task, n)), progress.stop


def image_build_display() -> Callable[[Any], None]:
    """A hook for image build events (``surge.sdk.image.build_output_hook``): a spinner with the
    current step on a terminal, the build's output below it; plain lines when piped."""
    console = _console(stderr=True)
    state: dict[str, Any] = {"status": None, "hash": ""}

    def stop() -> None:
        if state["status"] is not None:
            state["status"].stop()
            state["status"] = None

    def hook(event: Any) -> None:
        t = event.get("t")
        if t == "start":
            state["hash"] = str(event.get("hash", ""))[:12]
        elif t == "step":
            text = f"image {state['hash']}: step {event['index']}/{int(event['total']) - 1} {event['desc']}"
            if console.is_terminal:
                if state["status"] is None:
                    status = console.status(text)
                    status.start()
                    state["status"] = status
                else:
                    state["status"].update(text)
            else:
                console.print(text, markup=False, soft_wrap=True)
        elif t == "log":
            console.print(f"  {event['line']}", markup=False, soft_wrap=True, style="dim")
        elif t == "done":
            stop()
            if event.get("cached"):
                console.print(f"image {state['hash']}: cached", markup=False, style="dim")
            else:
                console.print(f"image {state['hash']}: built in {fmt_duration(event.get('seconds'))}", markup=False)

    return hook

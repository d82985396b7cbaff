"""``surge.Cron`` and ``surge.Period``: run a deployed function on a schedule.

>>> @app.function(schedule=surge.Cron("0 9 * * MON-FRI", timezone="America/New_York"))
... def report() -> None: ...
>>> @app.function(schedule=surge.Period(minutes=10))
... def refresh() -> None: ...

Schedules run only while the app is deployed (``surge deploy``), never under ``surge run``. Each
scheduled time starts one call (kind ``schedule`` in ``surge call list``); when the control plane
was down, one catch-up run covers what was missed. Rules for daylight-saving changes and calendar
periods: ``surge.core.schedule``; the user guide: ``docs/schedules.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from surge.core.schedule import CronSpec, PeriodSpec, make_period, parse_cron
from surge.errors import InvalidError


class Cron:
    """A crontab schedule (``minute hour day-of-month month day-of-week``) in an IANA timezone."""

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        self.spec: CronSpec = parse_cron(cron_string, timezone)

    def __repr__(self) -> str:
        return f"surge.Cron({self.spec.expr!r}, timezone={self.spec.timezone!r})"


class Period:
    """A fixed interval, counted from the deploy (a redeploy restarts it). Months and years are
    calendar months: ``Period(months=1)`` from Jan 31 fires Feb 28 (or 29), then Mar 31."""

    def __init__(self, *, years: int = 0, months: int = 0, weeks: float = 0, days: float = 0,
                 hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        self.spec: PeriodSpec = make_period(years=years, months=months, weeks=weeks, days=days,
                                            hours=hours, minutes=minutes, seconds=seconds)

    def __repr__(self) -> str:
        return f"surge.Period({self.spec.describe()})"


def schedule_spec(schedule: object, f: Callable[..., Any], tag: str) -> dict[str, Any]:
    """The JSON stored with a function for ``schedule=``, after checking that ``f`` can be called
    with no arguments (a scheduled run has none to give)."""
    if not isinstance(schedule, Cron | Period):
        hint = " (did you forget to call it? write surge.Period(minutes=5))" if schedule in (Cron, Period) else ""
        raise InvalidError(f"schedule={schedule!r}: expected surge.Cron(...) or surge.Period(...){hint}")
    if inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f):
        raise InvalidError(f"{tag}: a generator function cannot have a schedule (nobody reads its items); "
                           "return a value instead")
    required = [p.name for p in inspect.signature(f).parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if required:
        raise InvalidError(f"schedule={schedule!r} on {tag}: the function takes required argument(s) "
                           f"{', '.join(required)}, but a scheduled run passes none; give them defaults")
    from surge.sdk.serialization import b64, serialize_args

    return {**schedule.spec.to_json(), "args": b64(serialize_args((), {}))}

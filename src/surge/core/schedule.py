"""When scheduled functions fire: cron expressions in an IANA timezone, fixed or calendar periods,
and what to run after the control plane was down. Pure: the clock (``now``) is a parameter.

>>> c = parse_cron("0 9 * * MON-FRI", "Europe/Paris")
>>> next_fire(c, anchor=0.0, after=1_700_000_000.0)    # 2023-11-15 09:00 in Paris
1700035200.0

Daylight-saving rules follow cronie (the cron of most Linux distributions), so a schedule behaves
the way its author's crontab would:

- a job whose minute and hour fields are both fixed (``30 2 * * *``) runs **once a day**: in the
  repeated hour of a fall-back it runs at the first occurrence only, and if its time is skipped by
  a spring-forward it runs once, at the instant the clocks jump;
- a job with ``*`` in its minute or hour field (``*/5 * * * *``, ``0 * * * *``) follows the clock on
  the wall: it runs in both passes of a repeated hour and not at all in a skipped one.

A ``Period`` counts from its *anchor* (the deploy time, as in Modal, where a redeploy resets a
period): it fires at ``anchor + n × period`` for n = 1, 2, …, with months and years added on the
calendar (Jan 31 + 1 month = Feb 28/29, + 2 months = Mar 31), in UTC.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

from surge.errors import InvalidError

MIN_PERIOD = 1.0                 # seconds; the cron loop ticks every second
DST_MARGIN = 3 * 3600.0          # more than any UTC offset change (the largest is 2 h)
MISSED_CAP = 1000                # missed fire times are counted up to this many
CATCH_UP_GRACE = 60.0            # a fire time less than this old is on time, not a catch-up
# A cron expression must fire at least once within this many years (e.g. not "0 0 30 2 *").
_HORIZON_YEARS = 8
_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


@dataclass(frozen=True)
class CronSpec:
    """A validated cron schedule (use ``parse_cron``)."""

    expr: str                    # as written, e.g. "*/5 * * * *" or "@hourly"
    timezone: str = "UTC"
    wall: bool = True            # a field of minute/hour starts with "*": follows the wall clock

    def to_json(self) -> dict[str, object]:
        return {"kind": "cron", "expr": self.expr, "timezone": self.timezone}

    def describe(self) -> str:
        return f"cron {self.expr!r} ({self.timezone})"


@dataclass(frozen=True)
class PeriodSpec:
    """A validated period (use ``make_period``). ``seconds`` holds weeks, days, hours, minutes and
    seconds together; ``months`` holds years too."""

    months: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"kind": "period", "months": self.months, "seconds": self.seconds}

    def describe(self) -> str:
        parts = []
        if self.months:
            parts.append(f"{self.months} month{'s' if self.months != 1 else ''}")
        if self.seconds:
            parts.append(f"{self.seconds:g} s")
        return "every " + " + ".join(parts)


Schedule = CronSpec | PeriodSpec


@dataclass(frozen=True)
class FireDecision:
    """What the cron loop should do for one schedule at ``now``."""

    fire: tuple[float, ...]      # fire times to start now, oldest first
    missed: int                  # older due fire times dropped by the catch-up limit (capped)
    next_at: float | None        # the next fire time after ``now`` (None: never again)


# -- validation ------------------------------------------------------------------------------------

def parse_cron(expr: object, timezone: object = "UTC") -> CronSpec:
    """Check a 5-field crontab expression (or an ``@hourly``-style alias) and an IANA timezone."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidError(f"Cron({expr!r}): the expression must be a non-empty string like \"*/5 * * * *\"")
    text = " ".join(expr.split())
    fields = _ALIASES.get(text.lower(), text).split(" ")
    if len(fields) != 5:
        raise InvalidError(
            f"Cron({expr!r}): expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}; e.g. \"0 9 * * MON-FRI\" runs at 09:00 on weekdays")
    _zone(timezone)
    try:
        itr = croniter(" ".join(fields), datetime(2000, 1, 1))
    except CroniterError as exc:
        raise InvalidError(f"Cron({expr!r}): {_cron_problem(fields, exc)}") from None
    try:
        first = itr.get_next(datetime)
    except CroniterError:
        first = None
    if first is None or first.year >= 2000 + _HORIZON_YEARS:
        raise InvalidError(f"Cron({expr!r}): the expression never matches a real date "
                           "(e.g. February 30); check the day-of-month and month fields")
    wall = fields[0].startswith("*") or fields[1].startswith("*")
    return CronSpec(expr=text, timezone=str(timezone), wall=wall)


def _cron_problem(fields: list[str], exc: Exception) -> str:
    """Name the field croniter refused, when one alone is the problem."""
    for i, name in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[i] = fields[i]
        try:
            croniter(" ".join(probe), datetime(2000, 1, 1))
        except CroniterError:
            return (f"the {name} field {fields[i]!r} is not valid ({exc}); "
                    "fields are minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, "
                    "day of week 0-6 or SUN-SAT, with * , - and /")
    return str(exc)


def _zone(timezone: object) -> ZoneInfo:
    if not isinstance(timezone, str) or not timezone:
        raise InvalidError(f"timezone={timezone!r}: must be an IANA name such as \"UTC\" or \"America/New_York\"")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidError(f"timezone={timezone!r} is not a known IANA timezone; use a name such as "
                           "\"UTC\", \"Europe/Berlin\" or \"America/New_York\"") from None


def make_period(*, years: object = 0, months: object = 0, weeks: object = 0, days: object = 0,
                hours: object = 0, minutes: object = 0, seconds: object = 0) -> PeriodSpec:
    """Check a period's parts (each ≥ 0, years and months whole) and that it is at least 1 s."""
    calendar_parts: dict[str, object] = {"years": years, "months": months}
    fixed_parts = {"weeks": (weeks, 604800), "days": (days, 86400), "hours": (hours, 3600),
                   "minutes": (minutes, 60), "seconds": (seconds, 1)}
    for name, value in calendar_parts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidError(f"Period({name}={value!r}): must be a whole number of {name}")
        if value < 0:
            raise InvalidError(f"Period({name}={value}): must not be negative")
    total = 0.0
    for name, (value, unit) in fixed_parts.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidError(f"Period({name}={value!r}): must be a number of {name}")
        if value < 0:
            raise InvalidError(f"Period({name}={value}): must not be negative")
        total += value * unit
    n_months = 12 * _int(years) + _int(months)
    if n_months == 0 and total < MIN_PERIOD:
        given = ", ".join(f"{k}={v}" for k, v in {**calendar_parts, **{k: v for k, (v, _) in fixed_parts.items()}}.items()
                          if v) or "nothing"
        raise InvalidError(f"Period({given}) is {total:g} s: a period must be at least {MIN_PERIOD:g} s; "
                           "e.g. Period(minutes=10)")
    return PeriodSpec(months=n_months, seconds=total)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def from_json(d: object) -> Schedule:
    """A schedule from its ``to_json`` form, checked as strictly as the SDK checks it."""
    if not isinstance(d, dict):
        raise InvalidError(f"schedule must be a JSON object, got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "cron":
        return parse_cron(d.get("expr"), d.get("timezone", "UTC"))
    if kind == "period":
        months, seconds = d.get("months", 0), d.get("seconds", 0)
        return make_period(months=months, seconds=seconds)
    raise InvalidError(f"schedule kind {kind!r}: expected \"cron\" or \"period\"")


# -- fire times ------------------------------------------------------------------------------------

def next_fire(s: Schedule, *, anchor: float, after: float) -> float | None:
    """The first fire time strictly after ``after`` (None if there is none)."""
    if isinstance(s, PeriodSpec):
        n = _period_index(s, anchor, after)
        return _period_at(s, anchor, max(n, 0) + 1)
    return _cron_next(s, after)


def last_fire(s: Schedule, *, anchor: float, until: float, inclusive: bool = True) -> float | None:
    """The latest fire time at or before ``until`` (strictly before, if not ``inclusive``)."""
    if isinstance(s, PeriodSpec):
        n = _period_index(s, anchor, until)
        if not inclusive and n >= 1 and _period_at(s, anchor, n) >= until:
            n -= 1
        return _period_at(s, anchor, n) if n >= 1 else None
    return _cron_prev(s, until, inclusive)


def decide(s: Schedule, *, anchor: float, last_fired: float | None, now: float, catchup: int = 1,
           grace: float = CATCH_UP_GRACE) -> FireDecision:
    """Which fire times to start at ``now``.

    Due times are those after ``max(anchor, last_fired)`` and at or before ``now``. The newest
    ``catchup`` of them run (oldest first); older ones are counted as missed. With ``catchup=0``
    only a due time younger than ``grace`` runs: nothing missed during downtime is made up.
    """
    since = anchor if last_fired is None else max(anchor, last_fired)
    due: list[float] = []
    t = last_fire(s, anchor=anchor, until=now)
    while t is not None and t > since and len(due) < catchup + MISSED_CAP:
        due.append(t)
        t = last_fire(s, anchor=anchor, until=t, inclusive=False)
    fire = due[:catchup]
    if catchup == 0 and due and now - due[0] <= grace:
        fire = due[:1]     # on time, so not a catch-up
    return FireDecision(fire=tuple(reversed(fire)), missed=min(len(due) - len(fire), MISSED_CAP),
                        next_at=next_fire(s, anchor=anchor, after=now))


# -- periods ---------------------------------------------------------------------------------------

def _period_at(s: PeriodSpec, anchor: float, n: int) -> float:
    if not s.months:
        return anchor + n * s.seconds
    start = datetime.fromtimestamp(anchor, UTC)
    return _add_months(start, n * s.months).timestamp() + n * s.seconds


def _period_index(s: PeriodSpec, anchor: float, t: float) -> int:
    """The largest n ≥ 0 with ``_period_at(n) <= t`` (0 when t is before the first fire)."""
    if t < anchor:
        return 0
    step = s.months * 30.436875 * 86400 + s.seconds
    n = int((t - anchor) // step)
    while _period_at(s, anchor, n + 1) <= t:
        n += 1
    while n > 0 and _period_at(s, anchor, n) > t:
        n -= 1
    return n


def _add_months(d: datetime, months: int) -> datetime:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


# -- cron ------------------------------------------------------------------------------------------

def _cron_fields(s: CronSpec) -> str:
    return _ALIASES.get(s.expr.lower(), s.expr)


def _wall(t: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, zone).replace(tzinfo=None, fold=0)


def _near_transition(t: float, zone: ZoneInfo) -> bool:
    before = datetime.fromtimestamp(t - DST_MARGIN, zone).utcoffset()
    return before != datetime.fromtimestamp(t + DST_MARGIN, zone).utcoffset()


def _instants(s: CronSpec, wall: datetime, zone: ZoneInfo) -> list[float]:
    """When a matching wall-clock time happens (0, 1 or 2 instants; see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    second = wall.replace(tzinfo=zone, fold=1).timestamp()
    if first == second:
        return [first]
    if _wall(first, zone) == wall:            # repeated by a fall-back: both instants are real
        return [first, second] if s.wall else [first]
    # skipped by a spring-forward (fold=1 maps it before the gap, fold=0 after it)
    return [] if s.wall else [_transition(second, first, zone)]


def _transition(lo: float, hi: float, zone: ZoneInfo) -> float:
    """The instant in (lo, hi] where the UTC offset changes (whole seconds)."""
    lo_i, hi_i = math.floor(lo), math.ceil(hi)
    offset = datetime.fromtimestamp(lo_i, zone).utcoffset()
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == offset:
            lo_i = mid
        else:
            hi_i = mid
    return float(hi_i)


def _cron_next(s: CronSpec, after: float) -> float | None:
    zone = ZoneInfo(s.timezone)
    margin = timedelta(seconds=DST_MARGIN)
    start = _wall(after, zone) - (margin if _near_transition(after, zone) else timedelta(0))
    itr = croniter(_cron_fields(s), start)
    best: float | None = None
    stop: datetime | None = None
    while True:
        try:
            wall = itr.get_next(datetime)
        except CroniterError:
            return best
        if stop is not None and wall > stop:
            return best
        for t in _instants(s, wall, zone):
            if t > after and (best is None or t < best):
                best = t
                stop = wall + (margin if _near_transition(t, zone) else timedelta(0))


def _cron_prev(s: CronSpec, until: float, inclusive: bool) -> float | None:
    zone = ZoneInfo(s.timezone)
    margin = timedelta(seconds=DST_MARGIN)
    # croniter's get_prev is strictly before its start: start a minute late to include `until`
    start = _wall(until, zone) + timedelta(minutes=1)
    if _near_transition(until, zone):
        start += margin
    itr = croniter(_cron_fields(s), start)
    best: float | None = None
    stop: datetime | None = None
    while True:
        try:
            wall = itr.get_prev(datetime)
        except CroniterError:
            return best
        if stop is not None and wall < stop:
            return best
        for t in _instants(s, wall, zone):
            if (t <= until if inclusive else t < until) and (best is None or t > best):
                best = t
                stop = wall - (margin if _near_transition(t, zone) else timedelta(0))

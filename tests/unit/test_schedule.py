"""surge.core.schedule: cron and period fire times (with daylight-saving changes), validation, and
the catch-up decision after downtime."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import pytest
from croniter import CroniterBadCronError

import surge.core.schedule
from surge.core.schedule import (
    MIN_PERIOD,
    MISSED_CAP,
    CronSpec,
    FireDecision,
    PeriodSpec,
    _cron_problem,
    decide,
    from_json,
    last_fire,
    make_period,
    next_fire,
    parse_cron,
)
from surge.errors import InvalidError


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


NY = "America/New_York"
# 2025 in New York: clocks jump 02:00 EST → 03:00 EDT on Mar 9 (07:00 UTC) and fall back
# 02:00 EDT → 01:00 EST on Nov 2 (06:00 UTC).


def test_doctests() -> None:
    assert doctest.testmod(surge.core.schedule).failed == 0


# -- next fire -------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, tz, after, expected", [
    # plain UTC
    ("*/5 * * * *", "UTC", utc(2025, 1, 1, 12, 2), "2025-01-01 12:05:00"),
    ("*/5 * * * *", "UTC", utc(2025, 1, 1, 12, 5), "2025-01-01 12:10:00"),     # strictly after
    ("@hourly", "UTC", utc(2025, 1, 1, 12, 0, 1), "2025-01-01 13:00:00"),
    ("0 9 * * MON-FRI", "UTC", utc(2025, 1, 3, 10), "2025-01-06 09:00:00"),    # Fri → Mon
    ("0 0 29 2 *", "UTC", utc(2025, 1, 1), "2028-02-29 00:00:00"),             # leap days only
    # a timezone without DST, far from UTC
    ("0 9 * * *", "Asia/Kolkata", utc(2025, 1, 1), "2025-01-01 03:30:00"),
    # spring forward: a fixed time inside the skipped hour runs once, when the clocks jump
    ("30 2 * * *", NY, utc(2025, 3, 9, 5), "2025-03-09 07:00:00"),
    ("30 2 * * *", NY, utc(2025, 3, 9, 7), "2025-03-10 06:30:00"),
    # ... a wall-clock job skips the missing times and carries on at 03:00 EDT
    ("*/30 * * * *", NY, utc(2025, 3, 9, 6, 45), "2025-03-09 07:00:00"),
    ("*/30 * * * *", NY, utc(2025, 3, 9, 6, 30), "2025-03-09 07:00:00"),
    # fall back: a fixed time in the repeated hour runs at its first occurrence only
    ("30 1 * * *", NY, utc(2025, 11, 2, 4), "2025-11-02 05:30:00"),
    ("30 1 * * *", NY, utc(2025, 11, 2, 5, 30), "2025-11-03 06:30:00"),
    # ... a wall-clock job runs in both passes
    ("*/30 * * * *", NY, utc(2025, 11, 2, 5, 30), "2025-11-02 06:00:00"),
    ("*/30 * * * *", NY, utc(2025, 11, 2, 6, 0), "2025-11-02 06:30:00"),
    ("*/30 * * * *", NY, utc(2025, 11, 2, 6, 30), "2025-11-02 07:00:00"),
    ("0 * * * *", NY, utc(2025, 11, 2, 5), "2025-11-02 06:00:00"),
    # a fixed time just after the repeated hour is unaffected
    ("0 3 * * *", NY, utc(2025, 11, 2, 4), "2025-11-02 08:00:00"),
    # a 30-minute DST shift (Lord Howe Island: 02:00 → 02:30 on 2025-10-05)
    ("15 2 * * *", "Australia/Lord_Howe", utc(2025, 10, 4, 14), "2025-10-04 15:30:00"),
])
def test_cron_next_fire(expr: str, tz: str, after: float, expected: str) -> None:
    assert iso(next_fire(parse_cron(expr, tz), anchor=0.0, after=after)) == expected


def test_fall_back_wall_clock_sequence() -> None:
    s = parse_cron("*/30 * * * *", NY)
    t, seen = utc(2025, 11, 2, 4, 59), []
    for _ in range(6):
        t = next_fire(s, anchor=0.0, after=t)  # type: ignore[assignment]
        seen.append(iso(t)[11:16])  # type: ignore[index]
    # 01:00, 01:30 EDT, then 01:00, 01:30 EST, then 02:00, 02:30 EST
    assert seen == ["05:00", "05:30", "06:00", "06:30", "07:00", "07:30"]


@pytest.mark.parametrize("expr, tz, until, inclusive, expected", [
    ("*/5 * * * *", "UTC", utc(2025, 1, 1, 12, 5), True, "2025-01-01 12:05:00"),
    ("*/5 * * * *", "UTC", utc(2025, 1, 1, 12, 5), False, "2025-01-01 12:00:00"),
    ("*/5 * * * *", "UTC", utc(2025, 1, 1, 12, 7, 30), True, "2025-01-01 12:05:00"),
    ("30 2 * * *", NY, utc(2025, 3, 9, 8), True, "2025-03-09 07:00:00"),
    ("30 2 * * *", NY, utc(2025, 3, 9, 7), False, "2025-03-08 07:30:00"),
    ("*/30 * * * *", NY, utc(2025, 11, 2, 6, 59), True, "2025-11-02 06:30:00"),
    ("*/30 * * * *", NY, utc(2025, 11, 2, 6, 30), False, "2025-11-02 06:00:00"),
    ("*/30 * * * *", NY, utc(2025, 11, 2, 6, 0), False, "2025-11-02 05:30:00"),
    ("30 1 * * *", NY, utc(2025, 11, 2, 7), True, "2025-11-02 05:30:00"),
    ("*/30 * * * *", NY, utc(2025, 3, 9, 7), False, "2025-03-09 06:30:00"),
])
def test_cron_last_fire(expr: str, tz: str, until: float, inclusive: bool, expected: str) -> None:
    got = last_fire(parse_cron(expr, tz), anchor=0.0, until=until, inclusive=inclusive)
    assert iso(got) == expected


def test_cron_that_never_matches_has_no_fire_times() -> None:
    # parse_cron refuses it; a spec built directly (e.g. from an old store row) yields None
    s = CronSpec("0 0 30 2 *", "UTC", wall=False)
    assert next_fire(s, anchor=0.0, after=utc(2025, 1, 1)) is None
    assert last_fire(s, anchor=0.0, until=utc(2025, 1, 1)) is None


# -- periods ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("after, expected", [(999.0, 1010.0), (1000.0, 1010.0), (1010.0, 1020.0),
                                             (1015.5, 1020.0), (500.0, 1010.0)])
def test_period_next_fire(after: float, expected: float) -> None:
    assert next_fire(make_period(seconds=10), anchor=1000.0, after=after) == expected


@pytest.mark.parametrize("until, inclusive, expected", [
    (1005.0, True, None), (1010.0, True, 1010.0), (1010.0, False, None), (1019.0, True, 1010.0),
    (1020.0, False, 1010.0), (900.0, True, None),
])
def test_period_last_fire(until: float, inclusive: bool, expected: float | None) -> None:
    assert last_fire(make_period(seconds=10), anchor=1000.0, until=until, inclusive=inclusive) == expected


def test_calendar_months_clamp_to_month_end_from_the_anchor() -> None:
    p = make_period(months=1)
    anchor = utc(2024, 1, 31)
    t, seen = anchor, []
    for _ in range(4):
        t = next_fire(p, anchor=anchor, after=t)  # type: ignore[assignment]
        seen.append(iso(t)[:10])  # type: ignore[index]
    assert seen == ["2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]
    assert iso(last_fire(p, anchor=anchor, until=utc(2024, 4, 15))) == "2024-03-31 00:00:00"
    yearly = make_period(years=1, days=1)
    assert iso(next_fire(yearly, anchor=utc(2024, 2, 29), after=utc(2024, 3, 1))) == "2025-03-01 00:00:00"


def test_long_months_make_the_estimate_overshoot() -> None:
    # July and August have 31 days: 62 days is "more than two average months" but not 2 fires
    p = make_period(months=1)
    assert iso(last_fire(p, anchor=utc(2024, 7, 1), until=utc(2024, 8, 31, 23))) == "2024-08-01 00:00:00"


def test_period_far_from_its_anchor_is_exact() -> None:
    p = make_period(days=1)
    anchor = utc(2020, 1, 1, 6)
    assert iso(next_fire(p, anchor=anchor, after=utc(2025, 7, 4, 5))) == "2025-07-04 06:00:00"


# -- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, wall", [("*/5 * * * *", True), ("0 * * * *", True), ("30 2 * * *", False),
                                        ("@hourly", True), ("@daily", False), ("  0   9 * * 1  ", False)])
def test_parse_cron_accepts_and_classifies(expr: str, wall: bool) -> None:
    s = parse_cron(expr, "Europe/Berlin")
    assert s.wall is wall and s.timezone == "Europe/Berlin" and "  " not in s.expr


@pytest.mark.parametrize("expr, tz, message", [
    ("* * * *", "UTC", "expected 5 fields"),
    ("0 0 * * * *", "UTC", "expected 5 fields"),
    ("61 * * * *", "UTC", "the minute field '61' is not valid"),
    ("0 25 * * *", "UTC", "the hour field '25'"),
    ("0 0 * * FUNDAY", "UTC", "the day of week field"),
    ("0 0 30 2 *", "UTC", "never matches a real date"),
    ("", "UTC", "non-empty string"),
    (5, "UTC", "non-empty string"),
    ("* * * * *", "Mars/Olympus_Mons", "not a known IANA timezone"),
    ("* * * * *", "", "must be an IANA name"),
    ("* * * * *", 3, "must be an IANA name"),
    ("* * * * *", "../etc/passwd", "not a known IANA timezone"),
])
def test_parse_cron_refuses_with_the_reason(expr: object, tz: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message) as err:
        parse_cron(expr, tz)
    bad = tz if "IANA" in message else expr   # the message quotes the value at fault
    if isinstance(bad, str) and bad:
        assert repr(bad) in str(err.value)


def test_cron_problem_falls_back_to_croniters_message() -> None:
    # when no single field is to blame, croniter's own message is shown
    assert _cron_problem(["0", "0", "*", "*", "*"], CroniterBadCronError("odd")) == "odd"


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least 1 s"),
    ({"seconds": 0.5}, "at least 1 s"),
    ({"seconds": -10}, "must not be negative"),
    ({"months": -1}, "must not be negative"),
    ({"months": 1.5}, "whole number of months"),
    ({"years": True}, "whole number of years"),
    ({"minutes": "10"}, "must be a number of minutes"),
    ({"hours": float("nan")}, "must be a number of hours"),
    ({"days": False}, "must be a number of days"),
])
def test_make_period_refuses(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        make_period(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, months, seconds", [
    ({"seconds": MIN_PERIOD}, 0, MIN_PERIOD),
    ({"minutes": 10}, 0, 600.0),
    ({"weeks": 1, "days": 1, "hours": 1, "minutes": 1, "seconds": 1}, 0, 604800 + 86400 + 3600 + 61),
    ({"years": 1, "months": 2}, 14, 0.0),
])
def test_make_period_normalizes(kwargs: dict[str, float], months: int, seconds: float) -> None:
    p = make_period(**kwargs)  # type: ignore[arg-type]
    assert (p.months, p.seconds) == (months, seconds)


@pytest.mark.parametrize("spec", [parse_cron("*/5 * * * *", NY), make_period(minutes=10),
                                  make_period(months=1, hours=2)])
def test_json_round_trip(spec: CronSpec | PeriodSpec) -> None:
    assert from_json(spec.to_json()) == spec
    assert spec.describe()


@pytest.mark.parametrize("doc, message", [
    ([], "must be a JSON object"), ({"kind": "sometimes"}, "expected \"cron\" or \"period\""),
    ({"kind": "cron", "expr": "bad"}, "expected 5 fields"), ({"kind": "period", "seconds": 0}, "at least"),
])
def test_from_json_refuses(doc: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        from_json(doc)


def test_describe() -> None:
    assert make_period(months=1).describe() == "every 1 month"
    assert make_period(years=1, seconds=30).describe() == "every 12 months + 30 s"
    assert parse_cron("@daily").describe() == "cron '@daily' (UTC)"


# -- the catch-up decision -------------------------------------------------------------------------

FIVE = parse_cron("*/5 * * * *")
NOON = utc(2025, 1, 1, 12)


@pytest.mark.parametrize("anchor, last_fired, now, catchup, fire, missed", [
    # not due yet (deployed at 11:58, first fire 12:00)
    (NOON - 120, None, NOON - 1, 1, (), 0),
    # on time: the tick after 12:00 fires 12:00 once
    (NOON - 120, None, NOON + 0.5, 1, (NOON,), 0),
    # already fired (the store says so): nothing again
    (NOON - 120, NOON, NOON + 0.9, 1, (), 0),
    # down from 12:01 to 13:02: one catch-up run, the newest (13:00); the 11 older ones missed
    (NOON - 120, NOON, NOON + 3720, 1, (NOON + 3600,), 11),
    # catchup=3: the newest three, oldest first
    (NOON - 120, NOON, NOON + 3720, 3, (NOON + 3000, NOON + 3300, NOON + 3600), 9),
    # catchup=0: nothing that is late is made up ...
    (NOON - 120, NOON, NOON + 3720, 0, (), 12),
    # ... but a fire time younger than the grace still runs
    (NOON - 120, NOON, NOON + 3605, 0, (NOON + 3600,), 11),
    # a redeploy at 12:31 (anchor) ignores times before it even if never fired
    (NOON + 1860, NOON, NOON + 1861, 1, (), 0),
    # fired long ago, redeployed since: only times after the anchor count
    (NOON + 1860, NOON - 86400, NOON + 2110, 1, (NOON + 2100,), 0),
])
def test_decide(anchor: float, last_fired: float | None, now: float, catchup: int,
                fire: tuple[float, ...], missed: int) -> None:
    d = decide(FIVE, anchor=anchor, last_fired=last_fired, now=now, catchup=catchup)
    assert d.fire == fire and d.missed == missed
    assert d.next_at == next_fire(FIVE, anchor=anchor, after=now)
    assert d.next_at is not None and d.next_at > now


def test_decide_counts_missed_up_to_a_cap() -> None:
    every_second = make_period(seconds=1)
    d = decide(every_second, anchor=0.0, last_fired=10.0, now=100_000.0)
    assert d == FireDecision(fire=(100_000.0,), missed=MISSED_CAP, next_at=100_001.0)


def test_decide_period_resets_at_the_anchor() -> None:
    p = make_period(seconds=10)
    assert decide(p, anchor=1000.0, last_fired=995.0, now=1009.0).fire == ()
    assert decide(p, anchor=1000.0, last_fired=995.0, now=1010.0).fire == (1010.0,)


def test_decide_each_fire_time_once_across_ticks() -> None:
    """Ticking every 1.3 s for an hour, feeding back what was fired, fires every 5-minute time once."""
    anchor, last, fired = NOON - 1, None, []
    t = NOON
    while t < NOON + 3600:
        d = decide(FIVE, anchor=anchor, last_fired=last, now=t)
        assert d.missed == 0
        fired += d.fire
        last = d.fire[-1] if d.fire else last
        t += 1.3
    assert fired == [NOON + 300 * i for i in range(12)]


def test_spec_types() -> None:
    assert isinstance(make_period(seconds=5), PeriodSpec) and isinstance(parse_cron("@hourly"), CronSpec)

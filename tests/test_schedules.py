"""djq.schedules: Celery's crontab syntax, fire times in the beat time zone across DST
changes (a fixed clock, no database), intervals, one-offs and their words."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from djq.exceptions import ScheduleError
from djq.schedules import clocked, crontab, maybe_schedule, schedstate, schedule

UTC = dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def paris(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


# Europe/Paris in 2026: clocks go 02:00 -> 03:00 on 29 March (02:00-02:59 never happens)
# and 03:00 -> 02:00 on 25 October (02:00-02:59 happens twice).
DST_TABLE = [
    # (crontab fields, start (UTC), the next fire times as Paris wall times)
    (dict(minute=30, hour=2), utc(2026, 3, 27), [
        paris(2026, 3, 27, 2, 30), paris(2026, 3, 28, 2, 30),
        paris(2026, 3, 29, 3, 0),  # 02:30 does not exist: once, at the first instant after
        paris(2026, 3, 30, 2, 30)]),
    (dict(minute=30, hour=2), utc(2026, 10, 23), [
        paris(2026, 10, 23, 2, 30), paris(2026, 10, 24, 2, 30),
        paris(2026, 10, 25, 2, 30),  # happens twice: fires the first time only
        paris(2026, 10, 26, 2, 30)]),
    (dict(minute="0,30", hour="1-3"), utc(2026, 3, 28, 23), [
        paris(2026, 3, 29, 1, 0), paris(2026, 3, 29, 1, 30),
        paris(2026, 3, 29, 3, 0),  # 02:00, 02:30 and 03:00 are one instant: one fire
        paris(2026, 3, 29, 3, 30), paris(2026, 3, 30, 1, 0)]),
    (dict(minute="*/30", hour="1-3"), utc(2026, 10, 24, 22), [
        paris(2026, 10, 25, 1, 0), paris(2026, 10, 25, 1, 30), paris(2026, 10, 25, 2, 0),
        paris(2026, 10, 25, 2, 30),
        # the repeated 02:00-02:59 does not fire again; 03:00 comes two hours after 02:00
        paris(2026, 10, 25, 3, 0), paris(2026, 10, 25, 3, 30), paris(2026, 10, 26, 1, 0)]),
    (dict(minute=0, hour="*/6", day_of_week="sun"), utc(2026, 3, 28), [
        paris(2026, 3, 29, 0, 0), paris(2026, 3, 29, 6, 0), paris(2026, 3, 29, 12, 0),
        paris(2026, 3, 29, 18, 0), paris(2026, 4, 5, 0, 0)]),
    (dict(minute="*/15", day_of_week="mon-fri"), utc(2026, 1, 2, 21, 50), [
        paris(2026, 1, 2, 23, 0), paris(2026, 1, 2, 23, 15), paris(2026, 1, 2, 23, 30),
        paris(2026, 1, 2, 23, 45), paris(2026, 1, 5, 0, 0)]),  # Friday, then Monday
    (dict(minute=0, hour=0, day_of_month=29, month_of_year="feb"), utc(2026, 1, 1), [
        paris(2028, 2, 29, 0, 0), paris(2032, 2, 29, 0, 0)]),
]


@pytest.mark.parametrize("fields,start,expected", DST_TABLE)
def test_fire_times_across_dst(fields: dict, start: dt.datetime,
                               expected: list[dt.datetime]) -> None:
    cron = crontab(**fields, tz="Europe/Paris")
    assert cron.upcoming(len(expected), start) == expected


def test_start_inside_the_repeated_hour_skips_its_second_pass() -> None:
    cron = crontab(minute="*/15", tz="Europe/Paris")
    # 02:20 in the second pass (after the clocks went back): 02:30 already fired.
    start = paris(2026, 10, 25, 2, 20, fold=1)
    assert cron.next_fire(start) == paris(2026, 10, 25, 3, 0)
    assert cron.next_fire(paris(2026, 10, 25, 2, 20)) == paris(2026, 10, 25, 2, 30)


def test_beat_timezone_setting_is_the_default_zone(settings: Any) -> None:
    cron = crontab(minute=0, hour=9)
    settings.DJQ = {"beat_timezone": "America/New_York"}
    assert cron.next_fire(utc(2026, 3, 7, 15)) == utc(2026, 3, 8, 13)  # EDT from 8 March
    assert cron.next_fire(utc(2026, 3, 6, 15)) == utc(2026, 3, 7, 14)  # still EST
    settings.DJQ = {}
    settings.TIME_ZONE = "Asia/Tokyo"
    assert cron.next_fire(utc(2026, 3, 7, 15)) == utc(2026, 3, 8, 0)


@pytest.mark.parametrize("fields,minute,hour,dow,dom,moy", [
    (dict(minute="*/15"), {0, 15, 30, 45}, set(range(24)), set(range(7)), set(range(1, 32)),
     set(range(1, 13))),
    (dict(minute="0,30", hour="9-17/4", day_of_week="mon-fri"), {0, 30}, {9, 13, 17},
     {1, 2, 3, 4, 5}, set(range(1, 32)), set(range(1, 13))),
    (dict(minute=5, hour=[1, 2], day_of_week="fri-mon", day_of_month="1-7",
          month_of_year="jan,dec"), {5}, {1, 2}, {5, 6, 0, 1}, set(range(1, 8)), {1, 12}),
    (dict(day_of_week="Sunday,7,sat", hour="22-2"), set(range(60)), {22, 23, 0, 1, 2},
     {0, 6}, set(range(1, 32)), set(range(1, 13))),
    (dict(minute="10/20", month_of_year="*/3"), {10, 30, 50}, set(range(24)), set(range(7)),
     set(range(1, 32)), {1, 4, 7, 10}),
])
def test_celery_field_syntax(fields: dict, minute: set, hour: set, dow: set, dom: set,
                             moy: set) -> None:
    cron = crontab(**fields)
    assert (cron.minute, cron.hour, cron.day_of_week, cron.day_of_month,
            cron.month_of_year) == (minute, hour, dow, dom, moy)


@pytest.mark.parametrize("fields,field", [
    (dict(minute=60), "minute"), (dict(minute="*/0"), "minute"), (dict(minute="1-"), "minute"),
    (dict(hour="24"), "hour"), (dict(hour="x"), "hour"), (dict(hour=True), "hour"),
    (dict(day_of_week="funday"), "day_of_week"), (dict(day_of_week=8), "day_of_week"),
    (dict(day_of_month=0), "day_of_month"), (dict(day_of_month="32"), "day_of_month"),
    (dict(day_of_month="30,31", month_of_year="feb"), "day_of_month"),
    (dict(month_of_year=13), "month_of_year"), (dict(month_of_year="smarch"), "month_of_year"),
    (dict(minute=""), "minute"), (dict(minute=1.5), "minute"),
])
def test_bad_values_raise_when_defined_naming_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ScheduleError, match=f"crontab {field}:"):
        crontab(**fields)
    with pytest.raises(ValueError):  # ScheduleError is a ValueError, as Celery's are
        crontab(**fields)


def test_unknown_zone_raises() -> None:
    with pytest.raises(ScheduleError, match="tz: unknown time zone"):
        crontab(tz="Mars/Olympus")


def test_crontab_is_due_and_remaining_estimate_with_a_fixed_clock() -> None:
    now = utc(2026, 1, 1, 12, 7)
    cron = crontab(minute="*/15", tz="UTC", nowfun=lambda: now)
    # Last run at 11:50: 12:00 has passed since, so it is due; next ask at 12:15.
    assert cron.is_due(utc(2026, 1, 1, 11, 50)) == schedstate(True, 480.0)
    assert cron.is_due(utc(2026, 1, 1, 12, 0)) == schedstate(False, 480.0)
    assert cron.remaining_estimate(utc(2026, 1, 1, 12, 0)) == dt.timedelta(minutes=8)
    assert cron.remaining_estimate(utc(2026, 1, 1, 11, 0)) == -dt.timedelta(minutes=52)
    # A naive last_run_at is read in the crontab's zone.
    assert cron.is_due(dt.datetime(2026, 1, 1, 12, 0)).is_due is False


def test_interval_schedule() -> None:
    now = utc(2026, 1, 1, 12, 0, 30)
    every = schedule(dt.timedelta(seconds=10), nowfun=lambda: now)
    assert every.is_due(utc(2026, 1, 1, 12, 0, 15)) == schedstate(True, 10.0)
    assert every.is_due(utc(2026, 1, 1, 12, 0, 25)) == schedstate(False, 5.0)
    assert every.remaining_estimate(utc(2026, 1, 1, 12, 0, 25)) == dt.timedelta(seconds=5)
    # First fire one period after the start (Celery's), then on that grid; a late
    # scheduler collapses the missed periods into one fire and keeps the grid.
    assert every.first_fire(now) == utc(2026, 1, 1, 12, 0, 40)
    last = utc(2026, 1, 1, 12, 0, 40)
    assert every.next_fire(last, last) == utc(2026, 1, 1, 12, 0, 50)
    assert every.next_fire(utc(2026, 1, 1, 12, 3, 1), last) == utc(2026, 1, 1, 12, 3, 10)
    assert maybe_schedule(90) == schedule(dt.timedelta(seconds=90))
    assert maybe_schedule(dt.timedelta(minutes=5)).human() == "every 5 minutes"


@pytest.mark.parametrize("value", [0, -1, dt.timedelta(0), "10", True, None])
def test_bad_interval_raises(value: object) -> None:
    with pytest.raises(ScheduleError, match="schedule"):
        maybe_schedule(value, "schedule")


def test_clocked_fires_once() -> None:
    when = utc(2026, 5, 1, 8, 0)
    once = clocked(when, nowfun=lambda: utc(2026, 5, 1, 7, 0))
    assert once.first_fire(utc(2026, 4, 1)) == when
    assert once.next_fire(utc(2026, 4, 1)) == when
    assert once.next_fire(utc(2026, 4, 1), last_fire=when) is None
    assert once.next_fire(when) is None
    assert once.remaining_estimate(utc(2026, 4, 1)) == dt.timedelta(hours=1)
    assert once.is_due(utc(2026, 4, 1)).is_due is False
    with pytest.raises(ScheduleError, match="clocked_time"):
        clocked("tomorrow")  # type: ignore[arg-type]


@pytest.mark.parametrize("value,words", [
    (crontab(), "every minute"),
    (crontab(minute="*/15", day_of_week="mon-fri"), "every 15 minutes, Monday to Friday"),
    (crontab(minute=0), "every hour"),
    (crontab(minute=5), "every hour at minute 5"),
    (crontab(minute=30, hour=9), "at 09:30"),
    (crontab(minute=0, hour="9,17", day_of_week="sat,sun"), "at 09:00, 17:00, on Saturday, Sunday"),
    (crontab(minute=0, hour="*/2"), "every 2 hours at :00"),
    (crontab(minute=0, hour=0, day_of_month=1, month_of_year="jan"),
     "at 00:00, on day 1 of the month, in January"),
    (crontab(minute="*/10", hour="9-17", tz="Europe/Paris"),
     "every 10 minutes during hour(s) 9-17 (Europe/Paris)"),
    (schedule(1), "every second"), (schedule(900), "every 15 minutes"),
    (schedule(dt.timedelta(days=1)), "every day"), (schedule(2.5), "every 2.5 seconds"),
    (clocked(utc(2026, 5, 1, 8, 0)), "once, at 2026-05-01 08:00:00+00:00"),
])
def test_in_words(value: object, words: str) -> None:
    assert value.human() == words  # type: ignore[attr-defined]


def test_repr_is_celerys() -> None:
    assert repr(crontab(minute="*/15", day_of_week="mon-fri")) == \
        "<crontab: */15 * * * mon-fri (m/h/dM/MY/d)>"

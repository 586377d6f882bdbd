"""Schedules of periodic tasks, in Celery's terms: :class:`crontab`, :class:`schedule`
(a fixed interval; a ``timedelta`` or a number of seconds in ``beat_schedule``) and
:class:`clocked` (one fire time).

Each answers Celery's questions (``is_due(last_run_at)``, ``remaining_estimate(last_run_at)``,
with ``nowfun`` for a fixed clock) and the scheduler's: :meth:`next_fire`, the first fire
time strictly after an instant. Crontabs are read as wall-clock times in
``DJQ["beat_timezone"]`` (default: Django's ``TIME_ZONE``). Across a DST change, a wall
time that does not exist fires once, at the first instant after the gap; a wall time that
occurs twice fires once, the first time.

Bad values raise :class:`~djq.exceptions.ScheduleError` (a ``ValueError``) when the
schedule is made, naming the field.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .exceptions import ScheduleError

__all__ = ["crontab", "schedule", "clocked", "schedstate", "maybe_schedule", "beat_timezone"]

UTC = datetime.timezone.utc
_MINUTE = datetime.timedelta(minutes=1)
# A crontab that matches no day in this many years never fires (Feb 29 on a given
# weekday recurs every 28 years).
_SEARCH_YEARS = 30

_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]  # most a month can have


class schedstate(NamedTuple):  # noqa: N801 - Celery's name
    """Celery's answer to ``is_due``: whether to run now, and seconds until asking again."""

    is_due: bool
    next: float


def beat_timezone() -> zoneinfo.ZoneInfo | datetime.tzinfo:
    """The zone crontabs are read in: ``DJQ["beat_timezone"]``, else ``TIME_ZONE``."""
    from django.conf import settings

    from .conf import conf

    name = conf.beat_timezone or getattr(settings, "TIME_ZONE", None) or "UTC"
    return _zone(name, "beat_timezone")


def _zone(value: Any, field: str) -> zoneinfo.ZoneInfo | datetime.tzinfo:
    if isinstance(value, datetime.tzinfo):
        return value
    try:
        return zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, TypeError) as exc:
        raise ScheduleError(f"{field}: unknown time zone {value!r}") from exc


def _aware(value: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


class BaseSchedule:
    """What every schedule has: a clock (``nowfun``) and Celery's two questions."""

    def __init__(self, nowfun: Callable[[], datetime.datetime] | None = None) -> None:
        self.nowfun = nowfun

    def now(self) -> datetime.datetime:
        if self.nowfun is not None:
            return _aware(self.nowfun(), UTC)
        return datetime.datetime.now(UTC)

    def next_fire(self, after: datetime.datetime,
                  last_fire: datetime.datetime | None = None) -> datetime.datetime | None:
        """The first fire time strictly after ``after`` (None: never again).
        ``last_fire`` is the fire time last enqueued, if any."""
        raise NotImplementedError

    def first_fire(self, now: datetime.datetime) -> datetime.datetime | None:
        """The first fire time of a schedule that starts at ``now``."""
        return self.next_fire(now)

    def remaining_estimate(self, last_run_at: datetime.datetime) -> datetime.timedelta:
        """Time from now until the first fire time after ``last_run_at`` (negative when
        one is overdue)."""
        last = _aware(last_run_at, UTC)
        nxt = self.next_fire(last, last)
        if nxt is None:
            return datetime.timedelta.max
        return nxt - self.now()

    def is_due(self, last_run_at: datetime.datetime) -> schedstate:
        """Celery's ``(is_due, next)``: due when a fire time has passed since
        ``last_run_at``; ``next`` is the seconds until the following one."""
        remaining = self.remaining_estimate(last_run_at)
        if remaining <= datetime.timedelta(0):
            now = self.now()
            nxt = self.next_fire(now, now)
            return schedstate(True, (nxt - now).total_seconds() if nxt else float("inf"))
        return schedstate(False, remaining.total_seconds())

    def upcoming(self, count: int, after: datetime.datetime | None = None,
                 last_fire: datetime.datetime | None = None) -> list[datetime.datetime]:
        """The next ``count`` fire times after ``after`` (default: now)."""
        out: list[datetime.datetime] = []
        when = after or self.now()
        last = last_fire
        for _ in range(count):
            nxt = self.next_fire(when, last)
            if nxt is None:
                break
            out.append(nxt)
            when = last = nxt
        return out

    def human(self) -> str:
        raise NotImplementedError


# --- interval ----------------------------------------------------------------------------

def _seconds_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    if seconds >= 60 and (seconds * 10) % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


class schedule(BaseSchedule):  # noqa: N801 - Celery's name
    """Every ``run_every`` (a ``timedelta`` or seconds), on a fixed grid from the first
    fire time: a late fire does not shift the ones after it."""

    def __init__(self, run_every: datetime.timedelta | float | int,
                 nowfun: Callable[[], datetime.datetime] | None = None) -> None:
        super().__init__(nowfun)
        if isinstance(run_every, bool):
            raise ScheduleError(f"run_every: expected seconds or a timedelta, not {run_every!r}")
        if isinstance(run_every, (int, float)):
            run_every = datetime.timedelta(seconds=run_every)
        if not isinstance(run_every, datetime.timedelta):
            raise ScheduleError(f"run_every: expected seconds or a timedelta, not {run_every!r}")
        if run_every <= datetime.timedelta(0):
            raise ScheduleError(f"run_every: must be positive, not {run_every}")
        self.run_every = run_every

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    def first_fire(self, now: datetime.datetime) -> datetime.datetime:
        # Celery's: a new entry's last run is "now", so it first fires one period later.
        return now + self.run_every

    def next_fire(self, after: datetime.datetime,
                  last_fire: datetime.datetime | None = None) -> datetime.datetime:
        if last_fire is None:
            return after + self.run_every
        periods = max(1, (after - last_fire) // self.run_every + 1)
        return last_fire + periods * self.run_every

    def remaining_estimate(self, last_run_at: datetime.datetime) -> datetime.timedelta:
        return _aware(last_run_at, UTC) + self.run_every - self.now()

    def human(self) -> str:
        return f"every {_seconds_words(self.seconds)}"

    def __repr__(self) -> str:
        return f"<freq: {self.human()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.run_every == self.run_every

    def __hash__(self) -> int:
        return hash(self.run_every)


# --- clocked -----------------------------------------------------------------------------

class clocked(BaseSchedule):  # noqa: N801 - django-celery-beat's name
    """Once, at ``clocked_time`` (aware; a naive time is read in the beat time zone).
    A one-off whose time has passed fires as soon as a scheduler sees it."""

    def __init__(self, clocked_time: datetime.datetime,
                 nowfun: Callable[[], datetime.datetime] | None = None) -> None:
        super().__init__(nowfun)
        if not isinstance(clocked_time, datetime.datetime):
            raise ScheduleError(f"clocked_time: expected a datetime, not {clocked_time!r}")
        self.clocked_time = clocked_time

    @property
    def when(self) -> datetime.datetime:
        return _aware(self.clocked_time, beat_timezone())

    def first_fire(self, now: datetime.datetime) -> datetime.datetime:
        return self.when

    def next_fire(self, after: datetime.datetime,
                  last_fire: datetime.datetime | None = None) -> datetime.datetime | None:
        if last_fire is not None or self.when <= after:
            return None
        return self.when

    def remaining_estimate(self, last_run_at: datetime.datetime) -> datetime.timedelta:
        return self.when - self.now()

    def human(self) -> str:
        return f"once, at {self.when.isoformat(sep=' ')}"

    def __repr__(self) -> str:
        return f"<clocked: {self.when.isoformat()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, clocked) and other.clocked_time == self.clocked_time

    def __hash__(self) -> int:
        return hash(self.clocked_time)


# --- crontab -----------------------------------------------------------------------------

_PART = re.compile(r"^(?P<start>\*|[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?(?:/(?P<step>\d+))?$")


def _name_value(token: str, field: str, low: int, high: int) -> int:
    if token.isdigit():
        value = int(token)
    elif field == "day_of_week":
        value = next((i for i, d in enumerate(_DAYS) if token in (d, d[:3])), -1)
    elif field == "month_of_year":
        value = next((i + 1 for i, m in enumerate(_MONTHS) if token in (m, m[:3])), -1)
    else:
        value = -1
    if field == "day_of_week" and value == 7:  # cron's other Sunday
        value = 0
    if value == -1:
        raise ScheduleError(f"crontab {field}: {token!r} is not a valid value")
    if not low <= value <= high:
        raise ScheduleError(f"crontab {field}: {value} is out of range {low}-{high}")
    return value


def _parse_field(spec: Any, field: str, low: int, high: int) -> frozenset[int]:
    """Celery's crontab syntax: ``*``, ``*/15``, ``1-5``, ``mon-fri``, ``1-10/2``, lists
    (``"0,30"``), an int, or an iterable of ints."""
    top = 7 if field == "day_of_week" else high  # 7 is accepted as Sunday
    if isinstance(spec, bool):
        raise ScheduleError(f"crontab {field}: {spec!r} is not a valid value")
    if isinstance(spec, int):
        return frozenset([_name_value(str(spec), field, low, top)])
    if not isinstance(spec, str):
        if isinstance(spec, Iterable):
            return frozenset(v for item in spec for v in _parse_field(item, field, low, high))
        raise ScheduleError(f"crontab {field}: {spec!r} is not a valid value")
    values: set[int] = set()
    text = spec.strip().lower()
    if not text:
        raise ScheduleError(f"crontab {field}: empty value")
    for part in text.split(","):
        match = _PART.match(part.strip())
        if match is None:
            raise ScheduleError(f"crontab {field}: {part.strip()!r} is not valid syntax")
        start, end, step = match["start"], match["end"], match["step"]
        if step is not None and int(step) < 1:
            raise ScheduleError(f"crontab {field}: step must be 1 or more in {part!r}")
        if start == "*":
            if end is not None:
                raise ScheduleError(f"crontab {field}: {part!r} is not valid syntax")
            first, last = low, high
        else:
            first = _name_value(start, field, low, top)
            last = _name_value(end, field, low, top) if end is not None else (
                high if step is not None else first)
        if last >= first:
            span = list(range(first, last + 1))
        else:  # a range that wraps: fri-mon, 22-2
            span = list(range(first, high + 1)) + list(range(low, last + 1))
        values.update(span[::int(step or 1)])
    return frozenset(values)


def _ranges(values: Iterable[int], name: Callable[[int], str] = str) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3, 5"``; runs of three or more become ranges."""
    out: list[str] = []
    run: list[int] = []
    for v in sorted(values):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(_run_text(run, name))
        run = [v]
    if run:
        out.append(_run_text(run, name))
    return ", ".join(out)


def _run_text(run: list[int], name: Callable[[int], str]) -> str:
    if len(run) >= 3:
        return f"{name(run[0])} to {name(run[-1])}" if name is not str else f"{run[0]}-{run[-1]}"
    return ", ".join(name(v) for v in run)


def _step_of(values: frozenset[int], low: int, high: int) -> int | None:
    """n when ``values`` is ``*/n`` (n > 1) over low..high."""
    ordered = sorted(values)
    if len(ordered) < 2 or ordered[0] != low:
        return None
    step = ordered[1] - ordered[0]
    return step if step > 1 and ordered == list(range(low, high + 1, step)) else None


class crontab(BaseSchedule):  # noqa: N801 - Celery's name
    """Celery's crontab: ``crontab(minute="*/15", hour="9-17", day_of_week="mon-fri")``.

    As in Celery, a day must match both ``day_of_month`` and ``day_of_week``. ``tz``
    (djq's) reads this crontab in another zone than ``DJQ["beat_timezone"]``.
    """

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*", *,
                 nowfun: Callable[[], datetime.datetime] | None = None,
                 tz: str | datetime.tzinfo | None = None, app: Any = None) -> None:
        super().__init__(nowfun)
        self._orig_minute = minute
        self._orig_hour = hour
        self._orig_day_of_week = day_of_week
        self._orig_day_of_month = day_of_month
        self._orig_month_of_year = month_of_year
        self.minute = _parse_field(minute, "minute", 0, 59)
        self.hour = _parse_field(hour, "hour", 0, 23)
        self.day_of_week = _parse_field(day_of_week, "day_of_week", 0, 6)
        self.day_of_month = _parse_field(day_of_month, "day_of_month", 1, 31)
        self.month_of_year = _parse_field(month_of_year, "month_of_year", 1, 12)
        self._tz = _zone(tz, "tz") if tz is not None else None
        self.tz_name = None if tz is None else str(tz)
        if not any(d <= _MONTH_DAYS[m - 1] for m in self.month_of_year
                   for d in self.day_of_month):
            raise ScheduleError(
                f"crontab day_of_month: no day {_ranges(self.day_of_month)} in month(s) "
                f"{_ranges(self.month_of_year)}; it would never fire")
        self._minutes = sorted(self.minute)

    @property
    def tz(self) -> datetime.tzinfo:
        return self._tz if self._tz is not None else beat_timezone()

    def fields(self) -> dict[str, str]:
        """The five fields as text (as stored in the database)."""
        def text(value: Any) -> str:
            if isinstance(value, (str, int)):
                return str(value)
            return ",".join(str(v) for v in value)
        return {"minute": text(self._orig_minute), "hour": text(self._orig_hour),
                "day_of_week": text(self._orig_day_of_week),
                "day_of_month": text(self._orig_day_of_month),
                "month_of_year": text(self._orig_month_of_year)}

    # -- the next fire time -----------------------------------------------------------------
    def _next_wall(self, wall: datetime.datetime) -> datetime.datetime | None:
        """The first matching wall-clock minute at or after ``wall`` (naive)."""
        t = wall.replace(second=0, microsecond=0)
        if t < wall:
            t += _MINUTE
        limit = t.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.month_of_year:
                t = datetime.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
                continue
            if t.day not in self.day_of_month or t.isoweekday() % 7 not in self.day_of_week:
                t = datetime.datetime(t.year, t.month, t.day) + datetime.timedelta(days=1)
                continue
            if t.hour not in self.hour:
                t = datetime.datetime(t.year, t.month, t.day, t.hour) + datetime.timedelta(hours=1)
                continue
            if t.minute not in self.minute:
                later = [m for m in self._minutes if m > t.minute]
                if later:
                    t = t.replace(minute=later[0])
                else:
                    t = t.replace(minute=0) + datetime.timedelta(hours=1)
                continue
            return t
        return None

    def _instant(self, wall: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
        """The instant a wall time fires at: its first occurrence, or for a wall time in
        a DST gap, the first instant after the gap."""
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if first.astimezone(tz).replace(tzinfo=None) == wall:
            return first
        # In a gap: fold=1 reads the wall time with the offset after the change (an
        # instant before it), fold=0 with the offset before (an instant after it). The
        # change lies between; find its second.
        lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())
        hi = int(first.timestamp()) + 1
        before = datetime.datetime.fromtimestamp(lo, tz).utcoffset()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.datetime.fromtimestamp(mid, tz).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return datetime.datetime.fromtimestamp(hi, UTC)

    def next_fire(self, after: datetime.datetime,
                  last_fire: datetime.datetime | None = None) -> datetime.datetime | None:
        tz = self.tz
        after = _aware(after, tz)
        wall: datetime.datetime | None = after.astimezone(tz).replace(tzinfo=None)
        # Wall times map to instants in order; only a start inside a repeated hour (its
        # second pass) skips candidates whose first occurrence is already past.
        for _ in range(24 * 60 + 2):
            assert wall is not None
            wall = self._next_wall(wall)
            if wall is None:
                return None
            instant = self._instant(wall, tz)
            if instant > after:
                return instant
            wall += _MINUTE
        return None  # pragma: no cover - a repeated hour has at most a day of minutes

    def remaining_estimate(self, last_run_at: datetime.datetime) -> datetime.timedelta:
        nxt = self.next_fire(_aware(last_run_at, self.tz))
        if nxt is None:
            return datetime.timedelta.max
        return nxt - self.now()

    # -- words ------------------------------------------------------------------------------
    def human(self) -> str:
        """In words: ``"every 15 minutes, Monday to Friday"``."""
        parts = [self._time_words()]
        days = self._day_words()
        if days:
            parts.append(days)
        text = ", ".join(parts)
        return f"{text} ({self.tz_name})" if self._tz is not None else text

    def _time_words(self) -> str:
        minutes, hours = self.minute, self.hour
        all_minutes, all_hours = len(minutes) == 60, len(hours) == 24
        hour_words = "" if all_hours else f" during hour(s) {_ranges(hours)}"
        if all_minutes:
            return "every minute" + hour_words
        step = _step_of(minutes, 0, 59)
        if step:
            return f"every {step} minutes" + hour_words
        if len(minutes) == 1:
            minute = next(iter(minutes))
            if all_hours:
                return "every hour" + (f" at minute {minute}" if minute else "")
            hstep = _step_of(hours, 0, 23)
            if hstep:
                return f"every {hstep} hours at :{minute:02d}"
            if len(hours) <= 6:
                return "at " + ", ".join(f"{h:02d}:{minute:02d}" for h in sorted(hours))
        if not all_hours and len(hours) * len(minutes) <= 6:
            return "at " + ", ".join(f"{h:02d}:{m:02d}" for h in sorted(hours)
                                     for m in sorted(minutes))
        return f"at minute(s) {_ranges(minutes)}" + (hour_words or " of every hour")

    def _day_words(self) -> str:
        out: list[str] = []
        dow = self.day_of_week
        if len(dow) < 7:
            ordered = sorted(dow, key=lambda d: (d + 6) % 7)  # Monday first
            names = [_DAYS[d].capitalize() for d in ordered]
            monday_first = [(d + 6) % 7 for d in ordered]
            if len(ordered) >= 3 and monday_first == list(range(monday_first[0],
                                                               monday_first[-1] + 1)):
                out.append(f"{names[0]} to {names[-1]}")
            else:
                out.append("on " + ", ".join(names))
        if len(self.day_of_month) < 31:
            out.append(f"on day {_ranges(self.day_of_month)} of the month")
        if len(self.month_of_year) < 12:
            out.append("in " + _ranges(self.month_of_year,
                                       lambda m: _MONTHS[m - 1].capitalize()))
        return ", ".join(out)

    def __repr__(self) -> str:
        f = self.fields()
        return (f"<crontab: {f['minute']} {f['hour']} {f['day_of_month']} "
                f"{f['month_of_year']} {f['day_of_week']} (m/h/dM/MY/d)>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and (
            (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year,
             self.tz_name) ==
            (other.minute, other.hour, other.day_of_week, other.day_of_month,
             other.month_of_year, other.tz_name))

    def __hash__(self) -> int:
        return hash((self.minute, self.hour, self.day_of_week, self.day_of_month,
                     self.month_of_year))


def maybe_schedule(value: Any, field: str = "schedule") -> BaseSchedule:
    """A schedule from what ``beat_schedule`` accepts: a schedule, a ``timedelta`` or a
    number of seconds."""
    if isinstance(value, BaseSchedule):
        return value
    if isinstance(value, (datetime.timedelta, int, float)) and not isinstance(value, bool):
        try:
            return schedule(value)
        except ScheduleError as exc:
            raise ScheduleError(f"{field}: {exc}") from exc
    raise ScheduleError(
        f"{field}: expected a crontab, a clocked, a schedule, a timedelta or seconds, "
        f"not {type(value).__name__}")

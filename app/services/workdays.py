"""Chinese working days (工作日) for deadlines: bank responses, objections, reminders (DESIGN §3).

The official calendar — public holidays and the make-up working days (调休) that the State
Council announces each year — comes from ``chinese_calendar`` (PyPI ``chinesecalendar``). That
library only knows the years already announced and raises ``NotImplementedError`` for any
other year. Here nothing raises for an unknown year; the calendar used for a year is:

* ``"official"`` — the library knows the year: its holidays and make-up days, nothing else.
  Office entries for such a year are ignored: the State Council's announcement is the law.
* ``"office_entered"`` — the library does not know the year but the office entered days for it
  (``extra``: a mapping ``date -> is_working``, holidays ``False``, make-up days ``True``).
  Entered days count as entered; every other day is a working day from Monday to Friday.
* ``"weekends_only"`` — neither: Monday to Friday are working days. The UI says so, since a
  deadline counted this way may fall on what turns out to be a holiday.

:func:`calendar_status` tells which applies to a year. ``extra`` is supplied by the caller
(the office's table of entered days); this module keeps no state.

A deadline "n working days after" a date does not count the date itself: the first working
day strictly after it is day 1. :func:`deadline_at` ends the deadline at 23:59:59 Beijing time
(Asia/Shanghai, UTC+8 all year — China has no daylight saving) and returns it in UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")

CalendarStatus = Literal["official", "office_entered", "weekends_only"]
ExtraDays = Mapping[dt.date, bool]

# Enough for any real deadline; guards against a caller asking for an absurd count.
_MAX_WORKING_DAYS = 10_000


@functools.lru_cache(maxsize=256)
def _official_year(year: int) -> bool:
    """Whether ``chinese_calendar`` has the official calendar for ``year``."""
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def calendar_status(year: int, extra: ExtraDays | None = None) -> CalendarStatus:
    """Which calendar counts the working days of ``year`` (see the module docstring)."""
    if _official_year(year):
        return "official"
    if extra and any(day.year == year for day in extra):
        return "office_entered"
    return "weekends_only"


def is_working_day(day: dt.date, extra: ExtraDays | None = None) -> bool:
    """Whether ``day`` is a working day in China. Never raises for an unannounced year."""
    if isinstance(day, dt.datetime):
        raise TypeError("day must be a date, not a datetime")
    if _official_year(day.year):
        return bool(chinese_calendar.is_workday(day))
    if extra is not None and day in extra:
        return bool(extra[day])
    return day.weekday() < 5


def add_working_days(start: dt.date, n: int, extra: ExtraDays | None = None) -> dt.date:
    """The date ``n`` working days after ``start`` (``start`` itself is not counted).

    ``n == 0`` gives ``start``. Raises ``ValueError`` for a negative ``n``.
    """
    if isinstance(start, dt.datetime):
        raise TypeError("start must be a date, not a datetime")
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    if n > _MAX_WORKING_DAYS:
        raise ValueError(f"n must be ≤ {_MAX_WORKING_DAYS}, got {n}")
    day = start
    remaining = n
    while remaining:
        day += dt.timedelta(days=1)
        if is_working_day(day, extra):
            remaining -= 1
    return day


def working_days_between(a: dt.date, b: dt.date, extra: ExtraDays | None = None) -> int:
    """Working days after ``a`` up to and including ``b``; negative when ``b`` is before ``a``.

    The inverse of :func:`add_working_days`:
    ``working_days_between(d, add_working_days(d, n)) == n``.
    """
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        raise TypeError("a and b must be dates, not datetimes")
    if b < a:
        return -working_days_between(b, a, extra)
    count = 0
    day = a
    while day < b:
        day += dt.timedelta(days=1)
        if is_working_day(day, extra):
            count += 1
    return count


def local_date(moment: dt.datetime | None = None) -> dt.date:
    """The Beijing calendar day of ``moment`` (now when omitted).

    Every business date — a profile's as-of day, a repair's day, an offer's validity, "not in
    the future" checks — is a Beijing day: between 16:00 and 24:00 UTC the UTC date is still
    yesterday there. ``moment`` must be timezone-aware.
    """
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be a timezone-aware datetime")
    return moment.astimezone(SHANGHAI).date()


def deadline_at(start: dt.datetime, n: int, extra: ExtraDays | None = None) -> dt.datetime:
    """The end (23:59:59 Beijing time) of the ``n``-th working day after ``start``, in UTC.

    ``start`` must be timezone-aware; the day it falls on is taken in Beijing time, so a
    request sent at 17:00 UTC counts from the next Beijing day.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be a timezone-aware datetime")
    local_day = start.astimezone(SHANGHAI).date()
    due = add_working_days(local_day, n, extra)
    end_local = dt.datetime.combine(due, dt.time(23, 59, 59), tzinfo=SHANGHAI)
    return end_local.astimezone(dt.UTC)

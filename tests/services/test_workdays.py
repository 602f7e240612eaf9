"""Chinese working days: the official calendar, unannounced years, Beijing-time deadlines."""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import pytest

from app.services.workdays import (
    add_working_days,
    calendar_status,
    deadline_at,
    is_working_day,
    working_days_between,
)

D = dt.date
UTC = dt.UTC


def _library_last_year() -> int:
    """The last year chinese_calendar knows (it raises NotImplementedError after it)."""
    year = 2026
    while True:
        try:
            chinese_calendar.is_workday(D(year + 1, 1, 1))
        except NotImplementedError:
            return year
        year += 1


LAST_OFFICIAL = _library_last_year()
UNANNOUNCED = LAST_OFFICIAL + 1


def _spring_festival_2026() -> list[dt.date]:
    """The 2026 Spring Festival holiday, as the library has it (not as we remember it)."""
    days = [D(2026, 1, 1) + dt.timedelta(days=k) for k in range(120)]
    return [
        day
        for day in days
        if chinese_calendar.get_holiday_detail(day)
        == (True, chinese_calendar.Holiday.spring_festival.value)
    ]


def _reference_add(start: dt.date, n: int) -> dt.date:
    """Brute force straight on the library, for comparison."""
    day = start
    while n:
        day += dt.timedelta(days=1)
        if chinese_calendar.is_workday(day):
            n -= 1
    return day


def test_2026_is_official_and_the_spring_festival_is_not_worked() -> None:
    assert calendar_status(2026) == "official"
    holiday = _spring_festival_2026()
    assert len(holiday) >= 7  # the State Council always grants at least a week
    assert holiday == sorted(holiday)
    assert (holiday[-1] - holiday[0]).days == len(holiday) - 1  # one unbroken stretch
    weekdays_off = [day for day in holiday if day.weekday() < 5]
    assert weekdays_off  # weekdays off, not just a weekend
    for day in holiday:
        assert not is_working_day(day)


def test_deadline_across_the_spring_festival_matches_the_library() -> None:
    holiday = _spring_festival_2026()
    before = holiday[0] - dt.timedelta(days=3)
    for n in range(0, 15):
        due = add_working_days(before, n)
        assert due == _reference_add(before, n)
        assert due not in holiday
        assert working_days_between(before, due) == n
    # Two working days from just before the holiday land after it, nothing inside it.
    day_before = holiday[0] - dt.timedelta(days=1)
    while not is_working_day(day_before):
        day_before -= dt.timedelta(days=1)
    assert add_working_days(day_before, 5) > holiday[-1]


def test_spring_festival_2026_hand_checked() -> None:
    """Hand-checked against the library (2026 State Council notice as chinese_calendar 1.11
    has it): Spring Festival off Sun 15 Feb – Mon 23 Feb 2026 (9 days); Sat 14 Feb and
    Sat 28 Feb are make-up working days.

    From Fri 13 Feb: day 1 = Sat 14 Feb (make-up), day 2 = Tue 24 Feb, day 3 = Wed 25 Feb.
    From Thu 12 Feb, 10 working days: 13, 14, 24, 25, 26, 27, 28 Feb, 2, 3, 4 Mar → Wed 4 Mar
    (a weekends-only count would give Thu 26 Feb).
    """
    assert [chinese_calendar.is_workday(D(2026, 2, d)) for d in (14, 15, 23, 24, 28)] == [
        True,
        False,
        False,
        True,
        True,
    ]
    assert add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 14)
    assert add_working_days(D(2026, 2, 13), 2) == D(2026, 2, 24)
    assert add_working_days(D(2026, 2, 13), 3) == D(2026, 2, 25)
    assert add_working_days(D(2026, 2, 12), 10) == D(2026, 3, 4)
    assert working_days_between(D(2026, 2, 12), D(2026, 3, 4)) == 10
    assert working_days_between(D(2026, 3, 4), D(2026, 2, 12)) == -10
    assert working_days_between(D(2026, 2, 14), D(2026, 2, 23)) == 0


def test_make_up_saturday_counts() -> None:
    make_up = [day for day in chinese_calendar.workdays if day.year == 2026 and day.weekday() >= 5]
    assert make_up  # 2026 has make-up weekend days
    for day in make_up:
        assert is_working_day(day)
        friday_before = day - dt.timedelta(days=day.weekday() - 4)
        # The make-up day is a working day strictly between that Friday and itself + 1.
        assert working_days_between(friday_before, day) == 1
    assert D(2026, 2, 28).weekday() == 5
    assert is_working_day(D(2026, 2, 28))
    assert add_working_days(D(2026, 2, 27), 1) == D(2026, 2, 28)
    # An ordinary Saturday is not worked.
    assert not is_working_day(D(2026, 3, 7))


def test_unannounced_year_falls_back_to_weekends_without_raising() -> None:
    year = UNANNOUNCED
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(D(year, 1, 4))
    assert calendar_status(year) == "weekends_only"
    jan = [D(year, 1, d) for d in range(1, 32)]
    assert [is_working_day(day) for day in jan] == [day.weekday() < 5 for day in jan]
    # 1 January is a public holiday every year, but nobody has announced it yet for this one.
    first_weekday = next(day for day in jan if day.weekday() < 5)
    assert is_working_day(first_weekday)
    # 20 working days from the last day of the official calendar cross into the unknown year.
    start = D(LAST_OFFICIAL, 12, 31)
    due = add_working_days(start, 20)
    weekdays = [start + dt.timedelta(days=k) for k in range(1, (due - start).days + 1)]
    assert sum(day.weekday() < 5 for day in weekdays) == 20
    assert due.weekday() < 5


def test_unannounced_year_honours_office_entered_days() -> None:
    year = UNANNOUNCED
    jan1 = D(year, 1, 1)
    # Make jan1 a weekday-holiday case whatever weekday it is, plus a make-up Saturday.
    saturday = jan1 + dt.timedelta(days=(5 - jan1.weekday()) % 7 + 7)
    monday = saturday + dt.timedelta(days=2)
    extra = {jan1: False, monday: False, saturday: True}
    assert calendar_status(year, extra) == "office_entered"
    assert calendar_status(year + 1, extra) == "weekends_only"
    assert not is_working_day(jan1, extra)
    assert not is_working_day(monday, extra)
    assert is_working_day(saturday, extra)
    friday = saturday - dt.timedelta(days=1)
    assert add_working_days(friday, 1, extra) == saturday
    assert add_working_days(friday, 2, extra) == monday + dt.timedelta(days=1)
    assert add_working_days(friday, 1) == monday  # without the entries: weekends only
    assert working_days_between(friday, monday + dt.timedelta(days=1), extra) == 2


def test_office_entries_do_not_override_an_official_year() -> None:
    extra = {D(2026, 2, 16): True, D(2026, 3, 9): False}
    assert calendar_status(2026, extra) == "official"
    assert not is_working_day(D(2026, 2, 16), extra)
    assert is_working_day(D(2026, 3, 9), extra)


def test_deadline_ends_at_2359_beijing_time_in_utc() -> None:
    # Fri 13 Feb 2026 10:00 Beijing = 02:00 UTC; 3 working days → Wed 25 Feb 23:59:59 Beijing
    # = 15:59:59 UTC (Beijing is UTC+8 all year).
    start = dt.datetime(2026, 2, 13, 2, 0, tzinfo=UTC)
    due = deadline_at(start, 3)
    assert due == dt.datetime(2026, 2, 25, 15, 59, 59, tzinfo=UTC)
    assert due.utcoffset() == dt.timedelta(0)


def test_deadline_uses_the_beijing_date_of_the_start() -> None:
    # Fri 13 Feb 17:00 UTC is already Sat 14 Feb 01:00 in Beijing (a make-up working day);
    # counting starts from 14 Feb, so day 1 is Tue 24 Feb.
    late = dt.datetime(2026, 2, 13, 17, 0, tzinfo=UTC)
    assert deadline_at(late, 1) == dt.datetime(2026, 2, 24, 15, 59, 59, tzinfo=UTC)
    early = dt.datetime(2026, 2, 13, 15, 59, tzinfo=UTC)  # 23:59 Beijing, still the 13th
    assert deadline_at(early, 1) == dt.datetime(2026, 2, 14, 15, 59, 59, tzinfo=UTC)
    # A start in another zone is converted, not read as Beijing time.
    new_york = dt.timezone(dt.timedelta(hours=-5))
    same_instant = late.astimezone(new_york)
    assert deadline_at(same_instant, 1) == deadline_at(late, 1)


def test_shanghai_offset_is_the_same_in_winter_and_summer() -> None:
    """No daylight saving in China: the deadline is 15:59:59 UTC in January and July alike,
    including in an unannounced year (weekends only)."""
    for start in (
        dt.datetime(2026, 1, 12, 1, 0, tzinfo=UTC),
        dt.datetime(2026, 7, 13, 1, 0, tzinfo=UTC),
        dt.datetime(UNANNOUNCED, 3, 30, 1, 0, tzinfo=UTC),
        dt.datetime(UNANNOUNCED, 10, 31, 1, 0, tzinfo=UTC),
    ):
        due = deadline_at(start, 1)
        assert (due.hour, due.minute, due.second) == (15, 59, 59)
        assert due.tzinfo == UTC


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_at(dt.datetime(2026, 2, 13, 10, 0), 1)
    with pytest.raises(ValueError, match="n must be"):
        add_working_days(D(2026, 2, 13), -1)
    with pytest.raises(TypeError):
        is_working_day(dt.datetime(2026, 2, 13, tzinfo=UTC))
    assert add_working_days(D(2026, 2, 15), 0) == D(2026, 2, 15)

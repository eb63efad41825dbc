"""Due dates of recurring deposits: pure date arithmetic, no Django.

A schedule's due dates are counted from its first one (``start``): ``start + 7 k`` days for weekly schedules,
and for monthly ones the same day of the month ``k`` months later, clamped to the end of shorter months. The
day is always taken from ``start``, never from the previous due date, so a schedule started on the 31st pays
on Jan 31, Feb 28 (29), Mar 31, Apr 30... rather than drifting to the 28th for good.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Final

WEEKLY: Final = "weekly"
MONTHLY: Final = "monthly"
FREQUENCIES: Final = (WEEKLY, MONTHLY)


def add_months(start: date, months: int) -> date:
    """``start`` moved by ``months`` calendar months, its day clamped to the last day of the target month."""
    month_index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last_day))


def due_date(start: date, frequency: str, index: int) -> date:
    """The ``index``-th due date of a schedule (0 is ``start``)."""
    if index < 0:
        raise ValueError("due dates are counted from zero")
    if frequency == WEEKLY:
        return start + timedelta(days=7 * index)
    if frequency == MONTHLY:
        return add_months(start, index)
    raise ValueError(f"unknown frequency {frequency!r}")


def _first_index_on_or_after(start: date, frequency: str, day: date) -> int:
    """The smallest index whose due date is on or after ``day``."""
    if day <= start:
        return 0
    if frequency == WEEKLY:
        return -(-(day - start).days // 7)
    index = (day.year - start.year) * 12 + (day.month - start.month)
    while due_date(start, frequency, index) < day:
        index += 1
    return index


def due_dates_through(*, start: date, frequency: str, first: date, through: date) -> tuple[list[date], date]:
    """The due dates in ``[first, through]`` and the first due date after ``through``.

    ``first`` is where the schedule stands (its next unpaid due date); dates before it were paid already.
    """
    index = _first_index_on_or_after(start, frequency, first)
    due: list[date] = []
    day = due_date(start, frequency, index)
    while day <= through:
        due.append(day)
        index += 1
        day = due_date(start, frequency, index)
    return due, day

"""Due dates of recurring deposits (portfolios/schedules.py): pure, no database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portfolios.schedules import MONTHLY, WEEKLY, add_months, due_date, due_dates_through


def test_monthly_on_the_31st_clamps_to_short_months_and_comes_back() -> None:
    start = date(2027, 1, 31)

    dates, following = due_dates_through(start=start, frequency=MONTHLY, first=start, through=date(2027, 6, 1))

    assert dates == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31)]
    assert following == date(2027, 6, 30)


def test_leap_february_gets_the_29th() -> None:
    assert add_months(date(2027, 12, 30), 2) == date(2028, 2, 29)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)


def test_weekly_counts_seven_days_from_the_start() -> None:
    start = date(2026, 8, 3)

    dates, following = due_dates_through(start=start, frequency=WEEKLY, first=start, through=date(2026, 8, 24))

    assert dates == [date(2026, 8, 3), date(2026, 8, 10), date(2026, 8, 17), date(2026, 8, 24)]
    assert following == date(2026, 8, 31)


def test_dates_before_first_were_paid_and_are_not_due_again() -> None:
    start = date(2026, 1, 31)

    dates, following = due_dates_through(
        start=start, frequency=MONTHLY, first=date(2026, 2, 28), through=date(2026, 3, 31)
    )

    assert dates == [date(2026, 2, 28), date(2026, 3, 31)]
    assert following == date(2026, 4, 30)


def test_nothing_due_before_the_first_date() -> None:
    start = date(2026, 9, 15)

    assert due_dates_through(start=start, frequency=MONTHLY, first=start, through=date(2026, 9, 14)) == (
        [],
        date(2026, 9, 15),
    )


def test_unknown_frequency_and_negative_index_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown frequency"):
        due_date(date(2026, 1, 1), "daily", 1)
    with pytest.raises(ValueError, match="counted from zero"):
        due_date(date(2026, 1, 1), WEEKLY, -1)


def _monthly_oracle(start: date, through: date) -> list[date]:
    """Month by month from the first of each month, independent of add_months."""
    result, first_of_month = [], start.replace(day=1)
    while True:
        next_first = (first_of_month + timedelta(days=32)).replace(day=1)
        day = first_of_month.replace(day=min(start.day, (next_first - timedelta(days=1)).day))
        if day > through:
            return result
        result.append(day)
        first_of_month = next_first


days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@given(start=days, span=st.integers(0, 2000), frequency=st.sampled_from([WEEKLY, MONTHLY]))
@example(start=date(2027, 1, 31), span=400, frequency=MONTHLY)
@example(start=date(2028, 2, 29), span=800, frequency=MONTHLY)
def test_due_dates_match_an_independent_count(start: date, span: int, frequency: str) -> None:
    through = start + timedelta(days=span)

    dates, following = due_dates_through(start=start, frequency=frequency, first=start, through=through)

    if frequency == WEEKLY:
        expected = [start + timedelta(days=7 * k) for k in range(span // 7 + 1)]
    else:
        expected = _monthly_oracle(start, through)
    assert dates == expected
    assert following > through
    assert following == due_date(start, frequency, len(dates))


@given(
    start=days,
    cuts=st.lists(st.integers(0, 1500), min_size=1, max_size=8),
    frequency=st.sampled_from([WEEKLY, MONTHLY]),
)
def test_runs_on_any_dates_cover_every_due_date_once(start: date, cuts: list[int], frequency: str) -> None:
    """Running at any sequence of dates, each picking up from where the last left off, pays each date once."""
    first, paid = start, []
    for through in sorted(start + timedelta(days=c) for c in cuts):
        dates, first = due_dates_through(start=start, frequency=frequency, first=first, through=through)
        paid += dates
    last = start + timedelta(days=max(cuts))
    assert paid == due_dates_through(start=start, frequency=frequency, first=start, through=last)[0]
    assert len(paid) == len(set(paid))

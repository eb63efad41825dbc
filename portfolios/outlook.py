"""What a portfolio's expected return and volatility mean for a year (pure: no Django).

A normal approximation of the one-year return: the range of nine years out of ten and
the bad year of one in twenty (the 5th percentile, ``mu - 1.645 sigma``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

Z_95 = Decimal("1.645")  # one-sided 95% point of the normal distribution


class HasReturnAndVolatility(Protocol):
    @property
    def expected_return(self) -> Decimal: ...

    @property
    def volatility(self) -> Decimal: ...


def bad_year_return(expected_return: Decimal, volatility: Decimal) -> Decimal:
    """The 5th percentile of a year's return: negative is a loss."""
    return expected_return - Z_95 * volatility


def explain_level(portfolio: HasReturnAndVolatility | None) -> dict[str, Decimal] | None:
    """A one-year range of returns for the level's model portfolio (normal approximation)."""
    if portfolio is None:
        return None
    mu, sigma = portfolio.expected_return, portfolio.volatility
    bad_year = bad_year_return(mu, sigma)
    return {
        "expected": mu,
        "low": bad_year,
        "high": mu + Z_95 * sigma,
        "bad_year": bad_year,
        "bad_year_loss": -bad_year if bad_year < 0 else Decimal(0),
        "bad_year_on_10k": (-bad_year * 10000).quantize(Decimal("1")) if bad_year < 0 else Decimal(0),
    }

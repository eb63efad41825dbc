"""Display helpers: percentages and dollars from ``Decimal`` without going through float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def pct(value: object, places: int = 1) -> str:
    """0.1234 -> '12.3%'."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number * 100:.{int(places)}f}%"


@register.filter
def signed_pct(value: object, places: int = 1) -> str:
    number = _decimal(value)
    if number is None:
        return ""
    text = f"{number * 100:+.{int(places)}f}"
    if float(text) == 0:
        text = text[1:]  # no "-0.0" or "+0.0"
    return f"{text} pts"


@register.filter
def money(value: object) -> str:
    """1234.5 -> '$1,234.50'; negatives as '-$1,234.50'."""
    number = _decimal(value)
    if number is None:
        return ""
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,.2f}"

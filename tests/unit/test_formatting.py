from decimal import Decimal

from advisor.templatetags.advisor_format import money, pct, signed_pct


def test_percentages_and_money_format_decimals_exactly() -> None:
    assert pct(Decimal("0.123456")) == "12.3%"
    assert pct("0.35", 0) == "35%"
    assert money(Decimal("1234.5")) == "$1,234.50"
    assert money(Decimal("-0.05")) == "-$0.05"
    assert pct("not a number") == "" and money(None) == ""


def test_signed_points_never_show_a_signed_zero() -> None:
    assert signed_pct(Decimal("-0.0000004")) == "0.0 pts"
    assert signed_pct(Decimal("0.00001")) == "0.0 pts"
    assert signed_pct(Decimal("0.0612")) == "+6.1 pts"
    assert signed_pct(Decimal("-0.1")) == "-10.0 pts"

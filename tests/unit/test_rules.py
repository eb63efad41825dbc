"""Compliance rules on plain proposals: each rule passes a sound proposal and names what is wrong."""

from __future__ import annotations

from decimal import Decimal

from compliance.rules import (
    BLOCK,
    PASS,
    VOLATILITY_BANDS,
    WARN,
    ConcentrationLimit,
    MinimumTradeSize,
    NoShortSaleOrNegativeCash,
    Proposal,
    TradeLine,
    VolatilityWithinBand,
    default_rules,
    run_rules,
)

PRICES = {"VTI": Decimal("100"), "AGG": Decimal("50"), "GLD": Decimal("200")}


def proposal(**overrides: object) -> Proposal:
    values: dict[str, object] = {
        "risk_level": 6,
        "cash_before": Decimal("1000.00"),
        "holdings_before": {"VTI": Decimal("20"), "AGG": Decimal("36")},
        "prices": PRICES,
        "trades": [
            TradeLine("VTI", "sell", Decimal("5"), Decimal("100"), Decimal("499.75")),
            TradeLine("GLD", "buy", Decimal("7"), Decimal("200"), Decimal("-1400.70")),
        ],
        "target_volatility": 0.10,
    }
    values.update(overrides)
    return Proposal(**values)  # type: ignore[arg-type]


def test_a_sound_proposal_passes_every_rule() -> None:
    results = run_rules(proposal(), default_rules())
    assert [r.severity for r in results] == [PASS, PASS, PASS, PASS, PASS, PASS]
    assert proposal().cash_after() == Decimal("99.05")


def test_selling_more_than_held_is_blocked() -> None:
    result = NoShortSaleOrNegativeCash().check(
        proposal(trades=[TradeLine("VTI", "sell", Decimal("31"), Decimal("100"), Decimal("3098.45"))])
    )
    assert result.severity == BLOCK
    assert "sell 31 VTI but only 20 held (short sale)" in result.message
    assert "VTI would end at -11 shares" in result.message


def test_negative_cash_is_blocked() -> None:
    result = NoShortSaleOrNegativeCash().check(
        proposal(trades=[TradeLine("GLD", "buy", Decimal("6"), Decimal("200"), Decimal("-1200.60"))])
    )
    assert result.severity == BLOCK
    assert result.message == "cash would end at -200.60"


def test_concentration_above_limit_is_blocked() -> None:
    heavy = proposal(
        holdings_before={"VTI": Decimal("90"), "AGG": Decimal("20")},
        trades=[],
        cash_before=Decimal("0"),
    )
    result = ConcentrationLimit().check(heavy)
    assert result.severity == BLOCK
    assert result.details["ticker"] == "VTI" and result.details["weight"] == "0.9000"
    assert ConcentrationLimit(max_weight=Decimal("0.95")).check(heavy).severity == PASS


def test_volatility_outside_the_level_band_is_blocked() -> None:
    assert VolatilityWithinBand().check(proposal(risk_level=1, target_volatility=0.15)).severity == BLOCK
    assert VolatilityWithinBand().check(proposal(risk_level=10, target_volatility=0.02)).severity == BLOCK
    assert VolatilityWithinBand().check(proposal(risk_level=6, target_volatility=0.10)).severity == PASS


def test_below_the_band_because_of_the_investors_constraints_is_a_warning_and_above_it_still_blocks() -> None:
    # given: an investor whose ESG exclusions remove the equity funds
    constrained = {"investor_constraints": ("Your exclusion of tobacco removes IJR, VEA, VTI and VWO",)}
    # when / then: less risk than level 6 asks for is the investor's choice, more is never allowed
    low = VolatilityWithinBand().check(proposal(risk_level=6, target_volatility=0.044, **constrained))
    assert low.severity == WARN
    assert low.message == (
        "Target volatility 4.40% is below the 5.0% floor for risk level 6 because of the investor's constraints "
        "(Your exclusion of tobacco removes IJR, VEA, VTI and VWO)."
    )
    assert low.details["investor_constraints"] == list(constrained["investor_constraints"])
    high = VolatilityWithinBand().check(proposal(risk_level=1, target_volatility=0.15, **constrained))
    assert high.severity == BLOCK


def test_volatility_bands_cover_every_level_and_rise_with_it() -> None:
    assert sorted(VOLATILITY_BANDS) == list(range(1, 11))
    lows = [VOLATILITY_BANDS[level][0] for level in range(1, 11)]
    highs = [VOLATILITY_BANDS[level][1] for level in range(1, 11)]
    assert lows == sorted(lows) and highs == sorted(highs)
    assert all(low < high for low, high in VOLATILITY_BANDS.values())


def test_small_trades_only_warn() -> None:
    result = MinimumTradeSize(Decimal("50")).check(
        proposal(trades=[TradeLine("AGG", "buy", Decimal("0.5"), Decimal("50"), Decimal("-25.02"))])
    )
    assert result.severity == WARN and result.details["tickers"] == ["AGG"]

"""The shipped universe: every fund has a class, an expense ratio, a tax treatment; substitutes are sound."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolios.prices import read_price_file
from portfolios.universe import (
    ASSET_CLASSES,
    ASSETS,
    ESG_FLAGS,
    ESG_FLAGS_BY_TICKER,
    EXPENSE_RATIO_PCT,
    SUBSTITUTES,
    TAX_TREATMENTS,
    tax_treatment,
)

DATA = Path(__file__).resolve().parents[2] / "portfolios" / "data"
CLASS_OF = {ticker: class_code for ticker, _, class_code, _ in ASSETS}
KIND_OF = {code: kind for code, _, kind, _ in ASSET_CLASSES}


def test_every_fund_has_a_known_class_an_expense_ratio_and_a_tax_treatment() -> None:
    tickers = [t for t, *_ in ASSETS]
    assert len(tickers) == len(set(tickers)) == 57
    assert set(CLASS_OF.values()) <= set(KIND_OF)
    assert set(EXPENSE_RATIO_PCT) == set(tickers)
    for ticker in tickers:
        assert 0 < float(EXPENSE_RATIO_PCT[ticker]) < 1, ticker
        assert tax_treatment(ticker, CLASS_OF[ticker], KIND_OF[CLASS_OF[ticker]]) in TAX_TREATMENTS
    assert {f for flags in ESG_FLAGS_BY_TICKER.values() for f in flags} <= set(ESG_FLAGS)


def test_one_model_fund_per_model_class() -> None:
    model = [(t, CLASS_OF[t]) for t, _, _, in_model in ASSETS if in_model]
    assert len(model) == 16 and len({c for _, c in model}) == 16


def test_substitutes_share_the_class_of_their_primary_and_differ_from_it() -> None:
    for primary, secondary in SUBSTITUTES.items():
        assert primary != secondary
        assert CLASS_OF[primary] == CLASS_OF[secondary], (primary, secondary)
    assert len(set(SUBSTITUTES.values())) == len(SUBSTITUTES)  # no fund substitutes for two primaries
    assert tax_treatment("MUB", "municipal", "bond") == "tax_exempt_interest"
    assert tax_treatment("GLD", "gold", "real_asset") == "collectibles"


@pytest.mark.parametrize("name", ["etf_prices.csv.gz", "etf_prices_extra.csv.gz"])
def test_both_shipped_price_files_name_only_known_funds(name: str) -> None:
    rows = read_price_file(DATA / name, known_tickers=CLASS_OF)
    assert {r.ticker for r in rows} <= set(CLASS_OF)

"""Real shipped prices for tests: a recent window of the model funds, loaded in bulk."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pandas as pd

from portfolios.models import Asset, AssetClass, Price
from portfolios.universe import seed_universe
from profiling.install import install_questionnaires
from profiling.models import Questionnaire

DATA = Path(__file__).resolve().parent.parent / "portfolios" / "data" / "etf_prices.csv.gz"
TEST_YEARS = 4  # tests estimate from 3 years (settings override in conftest); keep a margin


@lru_cache(maxsize=1)
def _frame() -> pd.DataFrame:
    frame = pd.read_csv(DATA, dtype={"adj_close": str})
    frame["date"] = pd.to_datetime(frame["date"])
    last = frame["date"].max()
    return frame[frame["date"] > last - pd.DateOffset(years=TEST_YEARS)]


def load_market_data() -> None:
    """Seed the universe, the questionnaires and the last few years of prices, unless there (idempotent).

    Migrations seed the first two; a transactional test's flush removes them, so they are re-seeded here.
    """
    install_questionnaires(Questionnaire)
    if not Asset.objects.exists() or not AssetClass.objects.exists():
        seed_universe(AssetClass, Asset)
    if Price.objects.exists():
        return
    ids = dict(Asset.objects.values_list("ticker", "id"))
    frame = _frame()
    Price.objects.bulk_create(
        [
            Price(asset_id=ids[t], date=d.date(), close=Decimal(c))
            for t, d, c in zip(frame["ticker"], frame["date"], frame["adj_close"], strict=True)
        ],
        batch_size=5000,
    )

"""The investable universe shipped with Advisor: asset classes and the funds in each.

The first fund listed in a class marked ``model`` is the one model portfolios hold;
the others are alternatives (substitutes for tax-loss harvesting in later work).
"""

from __future__ import annotations

from typing import Any

# code, name, kind, display order
ASSET_CLASSES: tuple[tuple[str, str, str, int], ...] = (
    ("us_large", "US large-cap stocks", "equity", 10),
    ("us_small", "US small-cap stocks", "equity", 20),
    ("intl_developed", "Developed markets ex-US stocks", "equity", 30),
    ("emerging", "Emerging markets stocks", "equity", 40),
    ("real_estate", "US real estate (REITs)", "real_asset", 50),
    ("us_aggregate", "US aggregate bonds", "bond", 60),
    ("treasuries_short", "Short-term US Treasuries", "bond", 70),
    ("treasuries_intermediate", "Intermediate US Treasuries", "bond", 80),
    ("treasuries_long", "Long-term US Treasuries", "bond", 90),
    ("tips", "Inflation-protected Treasuries (TIPS)", "bond", 100),
    ("corporate", "Investment-grade corporate bonds", "bond", 110),
    ("high_yield", "High-yield corporate bonds", "bond", 120),
    ("municipal", "Municipal bonds", "bond", 130),
    ("gold", "Gold", "real_asset", 140),
    ("commodities", "Broad commodities", "real_asset", 150),
    ("cash", "Cash equivalents (T-bills)", "cash", 160),
)

# ESG exclusions an investor can choose, and which funds hold such companies or contracts.
# ILLUSTRATIVE: assigned by hand from each fund's index methodology (broad equity and corporate-bond
# indexes hold energy, defence and tobacco issuers; the commodity index holds energy futures), not from
# a licensed ESG data provider. A deployment should load real screens.
ESG_FLAGS: dict[str, str] = {
    "fossil_fuels": "Fossil fuel producers",
    "weapons": "Weapons and defence manufacturers",
    "tobacco": "Tobacco",
}
_BROAD_EQUITY = ("fossil_fuels", "weapons", "tobacco")
ESG_FLAGS_BY_TICKER: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("VTI", "SPY", "IVV", "IJR", "IWM", "VB", "VEA", "EFA", "VWO", "EEM"), _BROAD_EQUITY),
    **dict.fromkeys(("LQD", "HYG"), ("fossil_fuels", "weapons")),
    "DBC": ("fossil_fuels",),
}

# ticker, name, class code, held by model portfolios
ASSETS: tuple[tuple[str, str, str, bool], ...] = (
    ("VTI", "Vanguard Total Stock Market ETF", "us_large", True),
    ("SPY", "SPDR S&P 500 ETF Trust", "us_large", False),
    ("IVV", "iShares Core S&P 500 ETF", "us_large", False),
    ("IJR", "iShares Core S&P Small-Cap ETF", "us_small", True),
    ("IWM", "iShares Russell 2000 ETF", "us_small", False),
    ("VB", "Vanguard Small-Cap ETF", "us_small", False),
    ("VEA", "Vanguard FTSE Developed Markets ETF", "intl_developed", True),
    ("EFA", "iShares MSCI EAFE ETF", "intl_developed", False),
    ("VWO", "Vanguard FTSE Emerging Markets ETF", "emerging", True),
    ("EEM", "iShares MSCI Emerging Markets ETF", "emerging", False),
    ("VNQ", "Vanguard Real Estate ETF", "real_estate", True),
    ("AGG", "iShares Core US Aggregate Bond ETF", "us_aggregate", True),
    ("BND", "Vanguard Total Bond Market ETF", "us_aggregate", False),
    ("SHY", "iShares 1-3 Year Treasury Bond ETF", "treasuries_short", True),
    ("IEF", "iShares 7-10 Year Treasury Bond ETF", "treasuries_intermediate", True),
    ("TLT", "iShares 20+ Year Treasury Bond ETF", "treasuries_long", True),
    ("TIP", "iShares TIPS Bond ETF", "tips", True),
    ("SCHP", "Schwab US TIPS ETF", "tips", False),
    ("LQD", "iShares iBoxx $ Investment Grade Corporate Bond ETF", "corporate", True),
    ("HYG", "iShares iBoxx $ High Yield Corporate Bond ETF", "high_yield", True),
    ("MUB", "iShares National Muni Bond ETF", "municipal", True),
    ("GLD", "SPDR Gold Shares", "gold", True),
    ("IAU", "iShares Gold Trust", "gold", False),
    ("DBC", "Invesco DB Commodity Index Tracking Fund", "commodities", True),
    ("BIL", "SPDR Bloomberg 1-3 Month T-Bill ETF", "cash", True),
    ("SHV", "iShares Short Treasury Bond ETF", "cash", False),
)


def seed_universe(asset_class_model: Any, asset_model: Any) -> None:
    """Create or update the shipped classes and funds; takes the model classes so migrations can pass theirs."""
    classes = {}
    for code, name, kind, order in ASSET_CLASSES:
        classes[code], _ = asset_class_model.objects.update_or_create(
            code=code, defaults={"name": name, "kind": kind, "display_order": order}
        )
    for ticker, name, class_code, in_model in ASSETS:
        defaults = {"name": name, "asset_class": classes[class_code], "in_model_universe": in_model}
        if any(f.name == "esg_flags" for f in asset_model._meta.get_fields()):
            defaults["esg_flags"] = list(ESG_FLAGS_BY_TICKER.get(ticker, ()))
        asset_model.objects.update_or_create(ticker=ticker, defaults=defaults)

"""The investable universe shipped with Advisor: asset classes and the funds in each.

One fund per class is held by model portfolios (``in_model_universe``); the others are
alternatives and tax-loss-harvesting substitutes (``SUBSTITUTES``). Expense ratios are
approximate and ESG flags illustrative: see the comments at each table.
"""

from __future__ import annotations

from decimal import Decimal
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
    # Classes of the alternative funds only (no model fund): kept apart so drift stays meaningful.
    ("us_mid", "US mid-cap stocks", "equity", 25),
    ("intl_total", "All-world ex-US stocks", "equity", 35),
    ("global_equity", "Global stocks", "equity", 45),
    ("intl_real_estate", "Real estate ex-US", "real_asset", 55),
    ("intl_bonds", "International bonds (hedged)", "bond", 125),
    ("emerging_bonds", "Emerging markets bonds", "bond", 128),
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
    **dict.fromkeys(
        (
            "VTI",
            "SPY",
            "IVV",
            "IJR",
            "IWM",
            "VB",
            "VEA",
            "EFA",
            "VWO",
            "EEM",
            "VOO",
            "ITOT",
            "SCHB",
            "VTV",
            "VBR",
            "VOE",
            "VXUS",
            "VT",
            "SCHF",
            "IEFA",
            "SCHE",
            "IEMG",
        ),
        _BROAD_EQUITY,
    ),
    **dict.fromkeys(("LQD", "HYG", "VCIT", "VCSH", "EMB"), ("fossil_fuels", "weapons")),
    **dict.fromkeys(("DBC", "GSG", "PDBC"), ("fossil_fuels",)),
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
    # etf_prices_extra.csv.gz: alternatives and tax-loss-harvesting substitutes
    ("VOO", "Vanguard S&P 500 ETF", "us_large", False),
    ("ITOT", "iShares Core S&P Total US Stock Market ETF", "us_large", False),
    ("SCHB", "Schwab US Broad Market ETF", "us_large", False),
    ("VTV", "Vanguard Value ETF", "us_large", False),
    ("VBR", "Vanguard Small-Cap Value ETF", "us_small", False),
    ("VOE", "Vanguard Mid-Cap Value ETF", "us_mid", False),
    ("VXUS", "Vanguard Total International Stock ETF", "intl_total", False),
    ("VT", "Vanguard Total World Stock ETF", "global_equity", False),
    ("SCHF", "Schwab International Equity ETF", "intl_developed", False),
    ("IEFA", "iShares Core MSCI EAFE ETF", "intl_developed", False),
    ("SCHE", "Schwab Emerging Markets Equity ETF", "emerging", False),
    ("IEMG", "iShares Core MSCI Emerging Markets ETF", "emerging", False),
    ("BNDX", "Vanguard Total International Bond ETF", "intl_bonds", False),
    ("VTIP", "Vanguard Short-Term Inflation-Protected Securities ETF", "tips", False),
    ("STIP", "iShares 0-5 Year TIPS Bond ETF", "tips", False),
    ("VTEB", "Vanguard Tax-Exempt Bond ETF", "municipal", False),
    ("TFI", "SPDR Nuveen ICE Municipal Bond ETF", "municipal", False),
    ("VGSH", "Vanguard Short-Term Treasury ETF", "treasuries_short", False),
    ("VGIT", "Vanguard Intermediate-Term Treasury ETF", "treasuries_intermediate", False),
    ("VGLT", "Vanguard Long-Term Treasury ETF", "treasuries_long", False),
    ("VCIT", "Vanguard Intermediate-Term Corporate Bond ETF", "corporate", False),
    ("VCSH", "Vanguard Short-Term Corporate Bond ETF", "corporate", False),
    ("SCHZ", "Schwab US Aggregate Bond ETF", "us_aggregate", False),
    ("GOVT", "iShares US Treasury Bond ETF", "treasuries_intermediate", False),
    ("EMB", "iShares J.P. Morgan USD Emerging Markets Bond ETF", "emerging_bonds", False),
    ("IYR", "iShares US Real Estate ETF", "real_estate", False),
    ("SCHH", "Schwab US REIT ETF", "real_estate", False),
    ("VNQI", "Vanguard Global ex-US Real Estate ETF", "intl_real_estate", False),
    ("GSG", "iShares S&P GSCI Commodity-Indexed Trust", "commodities", False),
    ("PDBC", "Invesco Optimum Yield Diversified Commodity Strategy No K-1 ETF", "commodities", False),
    ("SGOV", "iShares 0-3 Month Treasury Bond ETF", "cash", False),
)

# Net expense ratios, in percent a year, as published by the issuers around 2025. APPROXIMATE and for
# illustration: verify against current prospectuses before relying on them.
EXPENSE_RATIO_PCT: dict[str, str] = {
    "VTI": "0.03", "SPY": "0.0945", "IVV": "0.03", "IJR": "0.06", "IWM": "0.19", "VB": "0.05", "VEA": "0.03",
    "EFA": "0.32", "VWO": "0.07", "EEM": "0.70", "VNQ": "0.13", "AGG": "0.03", "BND": "0.03", "SHY": "0.15",
    "IEF": "0.15", "TLT": "0.15", "TIP": "0.18", "SCHP": "0.03", "LQD": "0.14", "HYG": "0.49", "MUB": "0.05",
    "GLD": "0.40", "IAU": "0.25", "DBC": "0.85", "BIL": "0.1354", "SHV": "0.15", "VOO": "0.03", "ITOT": "0.03",
    "SCHB": "0.03", "VTV": "0.04", "VBR": "0.07", "VOE": "0.07", "VXUS": "0.05", "VT": "0.06", "SCHF": "0.03",
    "IEFA": "0.07", "SCHE": "0.11", "IEMG": "0.09", "BNDX": "0.07", "VTIP": "0.04", "STIP": "0.03",
    "VTEB": "0.03", "TFI": "0.23", "VGSH": "0.03", "VGIT": "0.03", "VGLT": "0.03", "VCIT": "0.03",
    "VCSH": "0.03", "SCHZ": "0.03", "GOVT": "0.05", "EMB": "0.39", "IYR": "0.39", "SCHH": "0.07",
    "VNQI": "0.12", "GSG": "0.75", "PDBC": "0.59", "SGOV": "0.09",
}  # fmt: skip

# How a US taxable investor is taxed on each fund's distributions (simplified).
TAX_TREATMENTS: dict[str, str] = {
    "qualified_dividends": "Mostly qualified dividends and long-term capital gains",
    "ordinary_income": "Interest or non-qualified dividends, taxed as ordinary income",
    "tax_exempt_interest": "Federally tax-exempt interest (best in taxable accounts)",
    "collectibles": "Gains taxed as collectibles (up to 28%)",
    "partnership_k1": "A commodity pool: K-1 reporting and 60/40 futures taxation",
}
_TAX_BY_CLASS = {
    "real_estate": "ordinary_income", "intl_real_estate": "ordinary_income", "municipal": "tax_exempt_interest",
    "gold": "collectibles", "commodities": "ordinary_income",
}  # fmt: skip
TAX_TREATMENT_OVERRIDES = {"DBC": "partnership_k1", "GSG": "partnership_k1"}

# Tax-loss-harvesting pairs: the secondary tracks a DIFFERENT index of the same class, so it is not
# "substantially identical" to the primary (a judgement a deployment's tax counsel should confirm).
# Gold and high yield have no suitable pair in the shipped data.
SUBSTITUTES: dict[str, str] = {
    "VTI": "ITOT", "IJR": "VB", "VEA": "IEFA", "VWO": "IEMG", "VNQ": "SCHH", "AGG": "BND", "SHY": "VGSH",
    "IEF": "VGIT", "TLT": "VGLT", "TIP": "SCHP", "LQD": "VCIT", "MUB": "VTEB", "DBC": "GSG", "BIL": "SGOV",
}  # fmt: skip


# The index each fund tracks, for the wash-sale rule: funds tracking the SAME index are treated as
# "substantially identical" (SPY, IVV and VOO all hold the S&P 500; GLD and IAU both hold gold bullion),
# funds tracking different indexes are not. Taken from the issuers' fund pages around 2025; ILLUSTRATIVE,
# and the boundary of "substantially identical" is a judgement for a deployment's tax counsel.
TRACKED_INDEX: dict[str, str] = {
    "VTI": "CRSP US Total Market", "SPY": "S&P 500", "IVV": "S&P 500", "VOO": "S&P 500",
    "IJR": "S&P SmallCap 600", "IWM": "Russell 2000", "VB": "CRSP US Small Cap",
    "VEA": "FTSE Developed All Cap ex US", "EFA": "MSCI EAFE", "VWO": "FTSE Emerging Markets All Cap",
    "EEM": "MSCI Emerging Markets", "VNQ": "MSCI US IMI Real Estate 25/50", "AGG": "Bloomberg US Aggregate",
    "BND": "Bloomberg US Aggregate Float Adjusted", "SHY": "ICE US Treasury 1-3 Year",
    "IEF": "ICE US Treasury 7-10 Year", "TLT": "ICE US Treasury 20+ Year",
    "TIP": "ICE US Treasury Inflation Linked", "SCHP": "Bloomberg US TIPS (Series-L)",
    "LQD": "iBoxx USD Liquid Investment Grade", "HYG": "iBoxx USD Liquid High Yield",
    "MUB": "ICE AMT-Free US National Municipal", "GLD": "Gold bullion", "IAU": "Gold bullion",
    "DBC": "DBIQ Optimum Yield Diversified Commodity", "PDBC": "DBIQ Optimum Yield Diversified Commodity",
    "BIL": "Bloomberg 1-3 Month US Treasury Bill", "SHV": "ICE Short US Treasury Securities",
    "ITOT": "S&P Total Market", "SCHB": "Dow Jones US Broad Stock Market", "VTV": "CRSP US Large Cap Value",
    "VBR": "CRSP US Small Cap Value", "VOE": "CRSP US Mid Cap Value", "VXUS": "FTSE Global All Cap ex US",
    "VT": "FTSE Global All Cap", "SCHF": "FTSE Developed ex US", "IEFA": "MSCI EAFE IMI",
    "SCHE": "FTSE Emerging", "IEMG": "MSCI Emerging Markets IMI",
    "BNDX": "Bloomberg Global Aggregate ex-USD (USD hedged)", "VTIP": "Bloomberg US TIPS 0-5 Year",
    "STIP": "ICE US Treasury 0-5 Year Inflation Linked", "VTEB": "S&P National AMT-Free Municipal Bond",
    "TFI": "Bloomberg Municipal Managed Money", "VGSH": "Bloomberg US Treasury 1-3 Year",
    "VGIT": "Bloomberg US Treasury 3-10 Year", "VGLT": "Bloomberg US Long Treasury",
    "VCIT": "Bloomberg US 5-10 Year Corporate", "VCSH": "Bloomberg US 1-5 Year Corporate",
    "SCHZ": "Bloomberg US Aggregate", "GOVT": "ICE US Treasury Core", "EMB": "J.P. Morgan EMBI Global Core",
    "IYR": "Dow Jones US Real Estate", "SCHH": "Dow Jones Equity All REIT Capped",
    "VNQI": "S&P Global ex-US Property", "GSG": "S&P GSCI", "SGOV": "ICE 0-3 Month US Treasury Securities",
}  # fmt: skip


def tax_treatment(ticker: str, class_code: str, kind: str) -> str:
    if ticker in TAX_TREATMENT_OVERRIDES:
        return TAX_TREATMENT_OVERRIDES[ticker]
    if class_code in _TAX_BY_CLASS:
        return _TAX_BY_CLASS[class_code]
    return "qualified_dividends" if kind == "equity" else "ordinary_income"


def seed_universe(asset_class_model: Any, asset_model: Any) -> None:
    """Create or update the shipped classes and funds; takes the model classes so migrations can pass theirs."""
    classes = {}
    for code, name, kind, order in ASSET_CLASSES:
        classes[code], _ = asset_class_model.objects.update_or_create(
            code=code, defaults={"name": name, "kind": kind, "display_order": order}
        )
    for ticker, name, class_code, in_model in ASSETS:
        fields = {f.name for f in asset_model._meta.get_fields()}
        defaults = {"name": name, "asset_class": classes[class_code], "in_model_universe": in_model}
        if "esg_flags" in fields:
            defaults["esg_flags"] = list(ESG_FLAGS_BY_TICKER.get(ticker, ()))
        if "expense_ratio" in fields:
            defaults["expense_ratio"] = Decimal(EXPENSE_RATIO_PCT[ticker]) / 100
            kind = next(k for code, _, k, _ in ASSET_CLASSES if code == class_code)
            defaults["tax_treatment"] = tax_treatment(ticker, class_code, kind)
        if "tracks_index" in fields:
            defaults["tracks_index"] = TRACKED_INDEX[ticker]
        asset_model.objects.update_or_create(ticker=ticker, defaults=defaults)
    if "substitute" in {f.name for f in asset_model._meta.get_fields()}:
        for primary, secondary in SUBSTITUTES.items():
            asset_model.objects.filter(ticker=primary).update(substitute=asset_model.objects.get(ticker=secondary))

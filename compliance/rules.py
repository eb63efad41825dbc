"""Compliance rules: each a small class with a code, parameters, a severity and a pure ``check``.

A rule returns one result per proposal: PASS, or its severity with the reason.
A BLOCK result prevents approval. Documented in docs/compliance.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

PASS, WARN, BLOCK = "pass", "warn", "block"
ZERO = Decimal("0")


@dataclass(frozen=True)
class TradeLine:
    ticker: str
    side: str  # "buy" | "sell"
    quantity: Decimal
    price: Decimal
    cash_effect: Decimal  # signed, what the cash ledger will post (costs included)


@dataclass(frozen=True)
class Proposal:
    """What a rule needs to know about a recommendation, in plain values."""

    risk_level: int
    cash_before: Decimal
    holdings_before: Mapping[str, Decimal]  # ticker -> quantity
    prices: Mapping[str, Decimal]
    trades: Sequence[TradeLine]
    target_volatility: float
    restricted: frozenset[str] = frozenset()  # tickers on the compliance restricted list
    # Funds the investor may not buy today: sold at a loss in the last 30 days (or by this proposal), or
    # substantially identical to one that was, in any of the investor's accounts (the wash-sale rule).
    wash_sale_blocked: frozenset[str] = frozenset()
    # The investor's own constraints that shape the target (ESG exclusions, account type...), in plain words:
    # a target below its level's band because of them is the investor's choice, not a model failure.
    investor_constraints: tuple[str, ...] = ()

    def holdings_after(self) -> dict[str, Decimal]:
        after = dict(self.holdings_before)
        for t in self.trades:
            delta = t.quantity if t.side == "buy" else -t.quantity
            after[t.ticker] = after.get(t.ticker, ZERO) + delta
        return after

    def cash_after(self) -> Decimal:
        return self.cash_before + sum((t.cash_effect for t in self.trades), ZERO)


@dataclass(frozen=True)
class RuleResult:
    rule_code: str
    severity: str
    message: str
    details: dict[str, object] = field(default_factory=dict)


class Rule:
    code: ClassVar[str]
    severity: ClassVar[str]
    description: ClassVar[str]

    def check(self, proposal: Proposal) -> RuleResult:
        raise NotImplementedError

    def _pass(self, message: str, **details: object) -> RuleResult:
        return RuleResult(self.code, PASS, message, details)

    def _fail(self, message: str, **details: object) -> RuleResult:
        return RuleResult(self.code, self.severity, message, details)


class NoShortSaleOrNegativeCash(Rule):
    code = "no_short_sale_or_negative_cash"
    severity = BLOCK
    description = "No sell exceeds the shares held, no position goes negative, and cash stays at or above zero."

    def check(self, proposal: Proposal) -> RuleResult:
        problems: list[str] = []
        for t in proposal.trades:
            if t.quantity <= 0:
                problems.append(f"{t.side} {t.ticker}: quantity {t.quantity} is not positive")
            if t.side == "sell" and t.quantity > proposal.holdings_before.get(t.ticker, ZERO):
                held = proposal.holdings_before.get(t.ticker, ZERO)
                problems.append(f"sell {t.quantity} {t.ticker} but only {held} held (short sale)")
        negative = {k: v for k, v in proposal.holdings_after().items() if v < 0}
        for ticker, quantity in negative.items():
            problems.append(f"{ticker} would end at {quantity} shares")
        cash_after = proposal.cash_after()
        if cash_after < 0:
            problems.append(f"cash would end at {cash_after}")
        if problems:
            return self._fail("; ".join(problems), cash_after=str(cash_after))
        return self._pass(f"No short sale; cash after trades {cash_after}.", cash_after=str(cash_after))


@dataclass
class ConcentrationLimit(Rule):
    code = "single_asset_concentration"
    severity = BLOCK
    description = "No single fund above the limit share of the account after the trades."
    max_weight: Decimal = Decimal("0.40")

    def check(self, proposal: Proposal) -> RuleResult:
        values = {k: q * proposal.prices[k] for k, q in proposal.holdings_after().items() if q > 0}
        total = sum(values.values(), ZERO) + max(proposal.cash_after(), ZERO)
        if total <= 0:
            return self._pass("Empty account.", max_weight=str(self.max_weight))
        ticker, largest = max(values.items(), key=lambda kv: kv[1], default=("", ZERO))
        weight = (largest / total).quantize(Decimal("0.0001"))
        details = {"ticker": ticker, "weight": str(weight), "max_weight": str(self.max_weight)}
        if weight > self.max_weight:
            return self._fail(
                f"{ticker} would be {weight:.2%} of the account, above the {self.max_weight:.0%} limit.", **details
            )
        return self._pass(f"Largest position {ticker or '-'} at {weight:.2%} (limit {self.max_weight:.0%}).", **details)


# Annual volatility a target portfolio may have at each risk level (min, max), as fractions.
VOLATILITY_BANDS: dict[int, tuple[float, float]] = {
    1: (0.0, 0.04),
    2: (0.0, 0.05),
    3: (0.01, 0.065),
    4: (0.02, 0.085),
    5: (0.035, 0.11),
    6: (0.05, 0.135),
    7: (0.07, 0.16),
    8: (0.09, 0.18),
    9: (0.10, 0.20),
    10: (0.11, 0.24),
}


@dataclass
class VolatilityWithinBand(Rule):
    code = "target_volatility_band"
    severity = BLOCK
    description = (
        "The target portfolio's expected volatility lies in the band for the investor's risk level (below the floor "
        "only as a warning, when the investor's own constraints keep it there)."
    )
    bands: Mapping[int, tuple[float, float]] = field(default_factory=lambda: dict(VOLATILITY_BANDS))

    def check(self, proposal: Proposal) -> RuleResult:
        if proposal.risk_level not in self.bands:
            return self._fail(f"No volatility band for risk level {proposal.risk_level}.")
        low, high = self.bands[proposal.risk_level]
        vol = proposal.target_volatility
        details = {"volatility": round(vol, 6), "band_min": low, "band_max": high, "risk_level": proposal.risk_level}
        if vol < low and proposal.investor_constraints:
            # Less risk than the level asks for, because of the investor's own choices: suitable, but the advisor
            # should make sure the investor knows what those choices cost (the explanation says it).
            return RuleResult(
                self.code,
                WARN,
                f"Target volatility {vol:.2%} is below the {low:.1%} floor for risk level {proposal.risk_level} "
                f"because of the investor's constraints ({'; '.join(proposal.investor_constraints)}).",
                {**details, "investor_constraints": list(proposal.investor_constraints)},
            )
        if not low <= vol <= high:
            return self._fail(
                f"Target volatility {vol:.2%} is outside {low:.1%}-{high:.1%} for risk level {proposal.risk_level}.",
                **details,
            )
        return self._pass(
            f"Target volatility {vol:.2%} within {low:.1%}-{high:.1%} for risk level {proposal.risk_level}.", **details
        )


@dataclass
class MinimumTradeSize(Rule):
    code = "minimum_trade_size"
    severity = WARN
    description = "Trades smaller than the minimum cost more than they move the account."
    min_amount: Decimal = Decimal("50")

    def check(self, proposal: Proposal) -> RuleResult:
        small = [t.ticker for t in proposal.trades if abs(t.quantity * t.price) < self.min_amount]
        if small:
            return self._fail(f"Trades below ${self.min_amount}: {', '.join(small)}.", tickers=small)
        return self._pass(f"Every trade is at least ${self.min_amount}.")


class RestrictedList(Rule):
    code = "restricted_list"
    severity = BLOCK
    description = (
        "No buy of a fund on the compliance restricted list (sells are allowed: that is how a position is exited)."
    )

    def check(self, proposal: Proposal) -> RuleResult:
        bought = sorted({t.ticker for t in proposal.trades if t.side == "buy" and t.ticker in proposal.restricted})
        if bought:
            return self._fail(f"Buys of restricted funds: {', '.join(bought)}.", tickers=bought)
        return self._pass("No buy of a restricted fund.")


class WashSaleRule(Rule):
    code = "wash_sale"
    severity = BLOCK
    description = (
        "No buy of a fund sold at a loss in the last 30 days, or substantially identical to one, in any of the "
        "investor's accounts: it would disallow the loss (the wash-sale rule)."
    )

    def check(self, proposal: Proposal) -> RuleResult:
        bought = sorted(
            {t.ticker for t in proposal.trades if t.side == "buy" and t.ticker in proposal.wash_sale_blocked}
        )
        if bought:
            return self._fail(
                f"Buys that would wash a recent loss: {', '.join(bought)}.",
                tickers=bought,
                blocked=sorted(proposal.wash_sale_blocked),
            )
        return self._pass("No buy of a fund in a wash-sale window.", blocked=sorted(proposal.wash_sale_blocked))


def default_rules(*, min_trade: Decimal = Decimal("50"), max_position_weight: Decimal = Decimal("0.40")) -> list[Rule]:
    return [
        NoShortSaleOrNegativeCash(),
        ConcentrationLimit(max_weight=max_position_weight),
        VolatilityWithinBand(),
        MinimumTradeSize(min_trade),
        RestrictedList(),
        WashSaleRule(),
    ]


def run_rules(proposal: Proposal, rules: Sequence[Rule]) -> list[RuleResult]:
    return [rule.check(proposal) for rule in rules]

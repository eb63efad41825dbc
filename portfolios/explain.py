"""Plain words for recommendations and for the constraints that shape a personal target (pure: no Django).

``recommendation_explanation`` says why the pipeline proposes trades and what they do. ``binding_sentence`` is
shared by the pipeline's recommendation explanations, the investor's dashboard ("Why this target") and the
account-target API, so an investor reads the same sentence everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .rebalance import ProposedTrade


def binding_sentence(binding: Mapping[str, Any]) -> str:
    """One constraint of the investor that shapes the target, and what it costs, in plain words.

    ``binding`` is a stored row of ``PersonalTarget.binding`` (``services.targets.binding_rows``): its label,
    assets, and the expected return given up and volatility added (fractions, None when not explained).
    """
    assets = list(binding["assets"])
    listed = assets[0] if len(assets) == 1 else ", ".join(assets[:-1]) + " and " + assets[-1] if assets else ""
    if binding["kind"] == "exclusion":
        sentence = f"{binding['label']} removes {listed}"
    else:
        sentence = f"{binding['label']} holds {listed} at its limit" if assets else f"{binding['label']} binds"
    return_cost, volatility_cost = binding["expected_return_cost"], binding["volatility_cost"]
    if return_cost is None:
        return sentence + "."
    sentence += f", costing about {max(return_cost, 0) * 100:.1f} percentage points of expected return a year"
    if volatility_cost is not None and abs(volatility_cost) >= 0.0005:
        change = "adding" if volatility_cost > 0 else "taking away"
        sentence += f" and {change} about {abs(volatility_cost) * 100:.1f} percentage points of volatility"
    return sentence + "."


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _listed(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


MAX_DRIFT_SENTENCES = 3


def _drift_sentences(drifts: Sequence[Mapping[str, Any]], *, cash_flow: bool) -> list[str]:
    """The asset classes beyond their bands, furthest first: three in full, the rest counted. With new cash to
    invest every class is below target, so only the count is said."""
    if not drifts:
        return []
    ordered = sorted(drifts, key=lambda t: abs(Decimal(t["drift"])), reverse=True)
    if cash_flow:
        return [f"{len(ordered)} asset classes are beyond their bands; the cash brings them back towards target."]
    sentences = []
    for t in ordered[:MAX_DRIFT_SENTENCES]:
        current, target, band = Decimal(t["current"]), Decimal(t["target"]), Decimal(t["band"])
        sentences.append(
            f"{t['name']} are {current:.1%} of your account against a target of {target:.1%}, "
            f"beyond the {band * 100:.1f}-point band."
        )
    if len(ordered) > MAX_DRIFT_SENTENCES:
        more = len(ordered) - MAX_DRIFT_SENTENCES
        sentences.append(
            f"{more} more asset class{'es are' if more > 1 else ' is'} beyond {'their' if more > 1 else 'its'} band."
        )
    return sentences


def recommendation_explanation(
    *,
    level: int,
    binding: Sequence[Mapping[str, Any]],
    triggers: Sequence[Mapping[str, Any]],
    trades: Sequence[ProposedTrade],
    realized_short: Decimal,
    realized_long: Decimal,
    harvested_loss: Decimal,
    estimated_tax: Decimal,
) -> str:
    """Why a recommendation was made and what it does, in plain words: the trigger (a withdrawal, idle cash, the
    asset classes beyond their bands, losses to harvest, a switch back), the trades, their tax effect and cost,
    and the investor's constraints that shape the target with what each costs."""
    lines: list[str] = []
    drifts: list[Mapping[str, Any]] = []
    for t in triggers:
        kind = t["type"]
        if kind == "withdrawal":
            lines.append(
                f"You asked to withdraw {_money(Decimal(t['amount']))} and the account holds "
                f"{_money(Decimal(t['cash']))} in cash: we sell from the asset classes above their targets first, "
                "lots at a loss first, to raise the rest."
            )
        elif kind == "cash":
            lines.append(
                f"You have {_money(Decimal(t['amount']))} of uninvested cash ({Decimal(t['weight']):.1%} of the "
                "account); we invest it in the asset classes furthest below their targets."
            )
        elif kind == "drift":
            drifts.append(t)
        elif kind == "harvest":
            by_ticker: dict[str, Decimal] = {}
            for lot in t["lots"]:
                by_ticker[lot["ticker"]] = by_ticker.get(lot["ticker"], Decimal(0)) + Decimal(lot["loss"])
            losses = _listed([f"{ticker} ({_money(loss)})" for ticker, loss in sorted(by_ticker.items())])
            lines.append(
                f"Some lots have lost value: {losses}. Selling them realizes the losses for your taxes, and the "
                f"proceeds buy {_listed(t['substitutes'])}, which tracks a different index of the same asset class: "
                "your allocation stays the same. We will not buy back the sold funds for 31 days (the wash-sale "
                "rule)."
            )
        elif kind == "switch_back":
            lines.append(
                f"More than a month after a tax-loss harvest, we switch {_listed(t['sold'])} back to "
                f"{_listed(t['bought'])}, your target's fund, without realizing a meaningful gain."
            )
        elif kind == "short_term_reduced":
            lines.append(
                "To avoid realizing short-term gains, the rebalance sells only lots held more than a year or at a loss."
            )
        elif kind == "no_buy_fund":
            lines.append(
                "One asset class cannot be bought today without breaking the wash-sale rule; its cash waits for a "
                "later day."
            )
    lines.extend(_drift_sentences(drifts, cash_flow=any(t["type"] == "cash" for t in triggers)))
    sells = [t for t in trades if t.side == "sell"]
    buys = [t for t in trades if t.side == "buy"]
    if sells:
        lines.append("Sell: " + ", ".join(f"{t.ticker} {_money(t.amount)}" for t in sells) + ".")
    if buys:
        lines.append("Buy: " + ", ".join(f"{t.ticker} {_money(t.amount)}" for t in buys) + ".")
    if sells:
        gains = []
        if realized_short:
            gains.append(f"{_money(realized_short)} of short-term")
        if realized_long:
            gains.append(f"{_money(realized_long)} of long-term")
        realized = (
            f"The sales realize {' and '.join(gains)} gains (negative: losses)"
            if gains
            else "The sales realize no gain"
        )
        if estimated_tax > 0:
            lines.append(f"{realized}, an estimated {_money(estimated_tax)} of tax at your rates.")
        elif estimated_tax < 0:
            lines.append(f"{realized}, saving an estimated {_money(-estimated_tax)} of tax at your rates.")
        else:
            lines.append(f"{realized}; no tax is due on them.")
    cost = sum((t.cost for t in trades), Decimal(0))
    lines.append(
        f"These trades keep the account on the target portfolio for your risk level {level} "
        f"at an estimated trading cost of {_money(cost)}."
    )
    lines.extend(binding_sentence(b) for b in binding)
    return " ".join(lines)

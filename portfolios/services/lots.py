"""The paper broker's lot bookkeeping: lots sold, realized gains, and the wash-sale rule at fill time.

These functions are steps of ``order_fill`` and run inside its transaction, after it has locked every account of
the investor (the wash-sale rule spans all of them). The rules themselves are pure (``portfolios/tax.py``);
docs/tax.md describes them and their simplifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Sum

from compliance.audit import audit_record

from .. import tax
from ..models import Account, AccountType, Asset, Fill, Lot, RealizedGain

ZERO = Decimal("0")


def planned_picks(trade_lots: object) -> list[tuple[int, Decimal]]:
    """The lots a trade names (``[{"lot": id, "quantity": "..."}]``) as ``(lot id, shares)``; malformed or
    non-positive entries are skipped, since the lot method covers whatever they do not."""
    picks: list[tuple[int, Decimal]] = []
    if not isinstance(trade_lots, list):
        return picks
    for entry in trade_lots:
        if not isinstance(entry, dict):
            continue
        try:
            lot_id = int(entry["lot"])
            shares = Decimal(str(entry["quantity"]))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            continue
        if shares.is_finite() and shares > 0:
            picks.append((lot_id, shares))
    return picks


def _open_lot(lot: Lot) -> tax.OpenLot:
    return tax.OpenLot(
        id=lot.pk,
        quantity=lot.quantity,
        cost_per_share=lot.cost_per_share,
        acquired_on=lot.acquired_on,
        holding_start=lot.holding_start or lot.acquired_on,
    )


def same_group_asset_ids(asset: Asset) -> list[int]:
    """The asset and every fund substantially identical to it (tracking the same index)."""
    if not asset.tracks_index:
        return [asset.pk]
    return list(Asset.objects.filter(tracks_index=asset.tracks_index).values_list("pk", flat=True))


def lots_sell(
    *,
    account: Account,
    asset: Asset,
    lots: list[Lot],
    fill: Fill,
    quantity: Decimal,
    net_proceeds: Decimal,
    planned: list[tuple[int, Decimal]],
    harvest: bool,
) -> list[RealizedGain]:
    """Take ``quantity`` shares from ``lots`` (locked, open, of this account and asset): the planned lots first,
    then the account's lot method; one realized gain per lot touched, proceeds allocated by shares."""
    by_id = {lot.pk: lot for lot in lots}
    picks = tax.select_lots(
        [_open_lot(lot) for lot in lots],
        quantity,
        method=account.lot_method,
        price=fill.price,
        sale_date=fill.market_date,
        planned=planned,
    )
    realized = tax.realize([(shares, by_id[lot_id].cost_per_share) for lot_id, shares in picks], net_proceeds)
    rows = []
    for (lot_id, shares), part in zip(picks, realized, strict=True):
        lot = by_id[lot_id]
        lot.quantity -= shares
        rows.append(
            RealizedGain(
                account=account,
                lot=lot,
                fill=fill,
                asset=asset,
                quantity=part.quantity,
                proceeds=part.proceeds,
                cost_basis=part.cost_basis,
                gain=part.gain,
                term=tax.gain_term(lot.holding_start or lot.acquired_on, fill.market_date).value,
                acquired_on=lot.acquired_on,
                sold_on=fill.market_date,
                harvest=harvest,
            )
        )
    Lot.objects.bulk_update([by_id[lot_id] for lot_id, _ in picks], ["quantity"])
    return RealizedGain.objects.bulk_create(rows)


def _window(day: date) -> tuple[date, date]:
    span = timedelta(days=tax.WASH_SALE_WINDOW_DAYS)
    return day - span, day + span


def _replacement_capacity(lots: list[Lot]) -> dict[int, Decimal]:
    """Shares of each lot that may still replace washed shares: the shares it holds, less those already used as
    replacements (each share bought replaces at most one share sold). At lot granularity the used shares are taken
    to be among those still held, so the capacity only ever falls."""
    used = dict(
        RealizedGain.objects.filter(replacement_lot__in=[lot.pk for lot in lots])
        .values("replacement_lot")
        .annotate(shares=Sum("quantity"))
        .values_list("replacement_lot", "shares")
    )
    # SQLite sums NUMERIC through floats: back to the broker's share step.
    return {lot.pk: max(ZERO, lot.quantity - Decimal(used.get(lot.pk, ZERO)).quantize(tax.SHARE_STEP)) for lot in lots}


@dataclass(frozen=True)
class WashAdjustment:
    realized_gain: int
    replacement_lot: int
    shares: Decimal
    disallowed: Decimal
    basis_adjusted: bool


def _wash(row: RealizedGain, replacement: Lot, shares: Decimal, sold_holding_start: date) -> WashAdjustment:
    """Disallow the loss of ``shares`` of ``row`` (split off into a row of their own when fewer than all) and add
    it to the replacement's basis, unless the replacement is in a tax-advantaged account (an IRA has no basis)."""
    if shares < row.quantity:
        washed, rest = tax.split_realized(tax.Realized(row.quantity, row.proceeds, row.cost_basis), shares)
        row.quantity, row.proceeds, row.cost_basis = rest.quantity, rest.proceeds, rest.cost_basis
        row.gain = rest.gain
        row.save(update_fields=["quantity", "proceeds", "cost_basis", "gain"])
        row = RealizedGain.objects.create(
            account_id=row.account_id,
            lot_id=row.lot_id,
            fill_id=row.fill_id,
            asset_id=row.asset_id,
            quantity=washed.quantity,
            proceeds=washed.proceeds,
            cost_basis=washed.cost_basis,
            gain=washed.gain,
            term=row.term,
            acquired_on=row.acquired_on,
            sold_on=row.sold_on,
            harvest=row.harvest,
        )
    disallowed = -row.gain if row.gain < 0 else ZERO
    row.wash_sale_disallowed = disallowed
    row.replacement_lot = replacement
    row.save(update_fields=["wash_sale_disallowed", "replacement_lot"])
    taxable = replacement.account.account_type == AccountType.TAXABLE
    old = {"cost_per_share": replacement.cost_per_share, "holding_start": replacement.holding_start}
    if taxable and disallowed > 0:
        replacement.cost_per_share = tax.raised_cost_per_share(
            replacement.cost_per_share, disallowed, replacement.quantity
        )
        replacement.wash_sale_adjustment += disallowed
        replacement.holding_start = min(replacement.holding_start or replacement.acquired_on, sold_holding_start)
        replacement.save(update_fields=["cost_per_share", "wash_sale_adjustment", "holding_start"])
    audit_record(
        actor=None,
        action="lot.wash_sale_adjusted",
        obj=replacement,
        subject_id=replacement.account.owner_id,
        payload={
            "realized_gain": row.pk,
            "sold_lot": row.lot_id,
            "sold_account": row.account_id,
            "sold_on": row.sold_on,
            "replacement_account": replacement.account_id,
            "washed_shares": shares,
            "disallowed": disallowed,
            # An IRA replacement takes the disallowed loss with it: it is lost for tax, not added to any basis.
            "basis_adjusted": taxable and disallowed > 0,
            "old": old,
            "new": {"cost_per_share": replacement.cost_per_share, "holding_start": replacement.holding_start},
        },
    )
    return WashAdjustment(row.pk, replacement.pk, shares, disallowed, taxable and disallowed > 0)


def wash_sales_after_sale(*, account: Account, asset: Asset, realized: list[RealizedGain]) -> list[WashAdjustment]:
    """A loss sale in a taxable account is washed by shares of the same group the investor bought, in any of
    their accounts, from 30 days before to 30 days after the sale (other lots than the one sold, not already
    replacing other washed shares)."""
    losses = [row for row in realized if row.gain < 0]
    if account.account_type != AccountType.TAXABLE or not losses:
        return []
    sold_on = losses[0].sold_on
    candidates = list(
        Lot.objects.select_for_update()
        .select_related("account")
        .filter(
            account__owner_id=account.owner_id,
            asset_id__in=same_group_asset_ids(asset),
            quantity__gt=0,
            acquired_on__range=_window(sold_on),
        )
        .order_by("acquired_on", "id")
    )
    if not candidates:
        return []
    capacity = _replacement_capacity(candidates)
    group = tax.wash_group(asset.ticker, asset.tracks_index)
    matches = tax.wash_matches(
        [tax.LossSale(key=i, lot=row.lot_id, group=group, sold_on=row.sold_on, shares=row.quantity)
         for i, row in enumerate(losses)],
        [tax.Purchase(key=lot.pk, group=group, acquired_on=lot.acquired_on, shares=capacity[lot.pk])
         for lot in candidates],
    )  # fmt: skip
    by_id = {lot.pk: lot for lot in candidates}
    holding_start = {row.lot_id: row.lot.holding_start or row.acquired_on for row in losses}
    adjustments = []
    # A sale's matches come in order; each splits its washed shares off the loss row that remains.
    for match in matches:
        row = losses[match.sale]
        adjustments.append(_wash(row, by_id[match.purchase], match.shares, holding_start[row.lot_id]))
    return adjustments


def wash_sales_after_buy(*, lot: Lot) -> list[WashAdjustment]:
    """A buy washes the losses of the same group the investor realized in a taxable account from 30 days before
    to 30 days after it whose shares are not yet matched, earliest sale first, up to the shares bought."""
    asset = lot.asset
    rows = list(
        RealizedGain.objects.select_for_update(of=("self",))
        .select_related("lot")
        .filter(
            account__owner_id=lot.account.owner_id,
            account__account_type=AccountType.TAXABLE,
            asset_id__in=same_group_asset_ids(asset),
            gain__lt=0,
            replacement_lot__isnull=True,
            sold_on__range=_window(lot.acquired_on),
        )
        .order_by("sold_on", "id")
    )
    if not rows:
        return []
    group = tax.wash_group(asset.ticker, asset.tracks_index)
    matches = tax.wash_matches(
        [tax.LossSale(key=row.pk, lot=row.lot_id, group=group, sold_on=row.sold_on, shares=row.quantity)
         for row in rows],
        [tax.Purchase(key=lot.pk, group=group, acquired_on=lot.acquired_on, shares=lot.quantity)],
    )  # fmt: skip
    by_id = {row.pk: row for row in rows}
    return [
        _wash(
            by_id[match.sale], lot, match.shares, by_id[match.sale].lot.holding_start or by_id[match.sale].acquired_on
        )
        for match in matches
    ]


def realized_payload(rows: list[RealizedGain]) -> list[dict[str, Any]]:
    return [
        {
            "realized_gain": row.pk,
            "lot": row.lot_id,
            "quantity": row.quantity,
            "proceeds": row.proceeds,
            "cost_basis": row.cost_basis,
            "gain": row.gain,
            "term": row.term,
            "wash_sale_disallowed": row.wash_sale_disallowed,
            "replacement_lot": row.replacement_lot_id,
        }
        for row in rows
    ]


def wash_payload(adjustments: list[WashAdjustment]) -> list[dict[str, Any]]:
    return [
        {
            "realized_gain": a.realized_gain,
            "replacement_lot": a.replacement_lot,
            "shares": a.shares,
            "disallowed": a.disallowed,
            "basis_adjusted": a.basis_adjusted,
        }
        for a in adjustments
    ]

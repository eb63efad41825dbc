"""Advisor decisions on recommendations, and their execution by the paper broker."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import User
from compliance.audit import PendingEvent, audit_record, audit_record_many
from compliance.models import Severity
from profiling.selectors import profile_current

from ..access import can_decide
from ..models import (
    Account,
    AccountType,
    CashMovement,
    CashMovementKind,
    Fill,
    Lot,
    Order,
    OrderStatus,
    Price,
    RealizedGain,
    Recommendation,
    RecommendationStatus,
    Trade,
    TradePurpose,
    TradeSide,
    WithdrawalRequest,
    WithdrawalStatus,
)
from ..rebalance import ZERO, buy_cash_effect, floor_shares, sell_cash_effect
from ..selectors import cash_balances, market_date_latest
from .lots import (
    lots_sell,
    planned_picks,
    realized_payload,
    wash_payload,
    wash_sales_after_buy,
    wash_sales_after_sale,
)

MAX_COMMENT = 2000


def _locked(recommendation_id: int) -> Recommendation:
    try:
        return (
            Recommendation.objects.select_for_update(of=("self",))
            .select_related("account__owner")
            .get(pk=recommendation_id)
        )
    except Recommendation.DoesNotExist:
        raise NotAllowedError("No such recommendation.") from None


WASH_SALE_DAYS = 30


def _wash_group(ticker: str, tracks_index: str) -> str:
    return tracks_index or ticker


def wash_sale_conflicts(recommendation: Recommendation, *, as_of: date | None = None) -> list[str]:
    """Why executing ``recommendation`` now would break the wash-sale rule across the investor's accounts, in
    plain words (empty: it would not). A buy conflicts with a loss realized in a taxable account of the investor
    in the last 30 days, or with a loss sale another open (pending or approved) recommendation proposes; a loss
    sale of a taxable account conflicts with a buy another open recommendation proposes. Same group = the same
    tracked index (``Asset.tracks_index``). ``as_of`` is the market date of the decision (default: the latest; a
    replay of history passes the day it replays)."""
    owner_id = recommendation.account.owner_id
    today = as_of or market_date_latest() or recommendation.market_date
    since = today - timedelta(days=WASH_SALE_DAYS)
    mine = list(recommendation.trades.select_related("asset"))
    taxable = recommendation.account.account_type == AccountType.TAXABLE
    buys = {_wash_group(t.asset.ticker, t.asset.tracks_index): t.asset.ticker for t in mine if t.side == TradeSide.BUY}
    loss_sells = {
        _wash_group(t.asset.ticker, t.asset.tracks_index): t.asset.ticker
        for t in mine
        if taxable and t.side == TradeSide.SELL and t.estimated_gain < 0
    }
    if not buys and not loss_sells:
        return []
    conflicts: list[str] = []
    realized = (
        RealizedGain.objects.filter(
            account__owner_id=owner_id, account__account_type=AccountType.TAXABLE, gain__lt=0, sold_on__gte=since
        )
        .values_list("asset__ticker", "asset__tracks_index", "sold_on")
        .order_by("-sold_on")
    )
    for ticker, index, sold_on in realized:
        group = _wash_group(ticker, index)
        if group in buys:
            conflicts.append(f"buying {buys.pop(group)} would wash the loss realized on {ticker} on {sold_on}")
    others = (
        Trade.objects.filter(
            recommendation__account__owner_id=owner_id,
            recommendation__status__in=(RecommendationStatus.PENDING, RecommendationStatus.APPROVED),
        )
        .exclude(recommendation=recommendation)
        .values_list(
            "recommendation_id", "side", "estimated_gain", "asset__ticker", "asset__tracks_index",
            "recommendation__account__account_type",
        )
    )  # fmt: skip
    for other_id, side, gain, ticker, index, account_type in others:
        group = _wash_group(ticker, index)
        if side == TradeSide.SELL and gain < 0 and account_type == AccountType.TAXABLE and group in buys:
            conflicts.append(
                f"buying {buys.pop(group)} would wash the loss recommendation #{other_id} proposes on {ticker}"
            )
        elif side == TradeSide.BUY and group in loss_sells:
            conflicts.append(
                f"the loss on {loss_sells.pop(group)} would be washed by recommendation #{other_id}'s buy of {ticker}"
            )
    return conflicts


def recommendation_approve(
    *, recommendation_id: int, advisor: User, comment: str = "", as_of: date | None = None
) -> Recommendation:
    """Approve a pending recommendation: its orders are created now and filled by a worker after commit.
    ``as_of``: the market date of the decision for the wash-sale check (default: the latest market date)."""
    from ..tasks import execute_recommendation

    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidInputError("Comment too long.", fields={"comment": f"At most {MAX_COMMENT} characters."})
    with transaction.atomic():
        recommendation = _locked(recommendation_id)
        if not can_decide(advisor, recommendation):
            raise NotAllowedError("Only the investor's assigned advisor can approve this recommendation.")
        profile = profile_current(investor=recommendation.account.owner)
        if profile is not None and profile.needs_advisor_review:
            raise InvalidStateError(
                "The investor's answers are flagged as inconsistent: review the profile before approving."
            )
        if recommendation.findings.filter(severity=Severity.BLOCK).exists():
            raise InvalidStateError("Compliance blocked this recommendation; it cannot be approved.")
        if recommendation.status != RecommendationStatus.PENDING:
            raise InvalidStateError(f"This recommendation is {recommendation.get_status_display().lower()}.")
        conflicts = wash_sale_conflicts(recommendation, as_of=as_of)
        if conflicts:
            # The pipeline's check saw only what had happened when it ran: another account of the investor may
            # have sold at a loss, or been proposed a conflicting trade, since.
            raise InvalidStateError("Approving this would break the wash-sale rule: " + "; ".join(conflicts) + ".")
        recommendation.status = RecommendationStatus.APPROVED
        recommendation.decided_by = advisor
        recommendation.decided_at = timezone.now()
        recommendation.decision_comment = comment
        recommendation.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
        orders = Order.objects.bulk_create(
            [
                Order(
                    trade=trade,
                    recommendation=recommendation,
                    account=recommendation.account,
                    asset_id=trade.asset_id,
                    side=trade.side,
                    quantity=trade.quantity,
                    idempotency_key=f"rec-{recommendation.pk}-trade-{trade.pk}",
                )
                for trade in recommendation.trades.all()
            ]
        )
        audit_record(
            actor=advisor,
            action="recommendation.approved",
            obj=recommendation,
            subject_id=recommendation.account.owner_id,
            payload={"comment": comment, "orders": [o.idempotency_key for o in orders], "old_status": "pending"},
        )
        transaction.on_commit(lambda: execute_recommendation.delay(recommendation.pk))
    return recommendation


def recommendation_reject(*, recommendation_id: int, advisor: User, comment: str) -> Recommendation:
    from profiling.services.behaviour_hooks import recommendation_rejected

    comment = comment.strip()
    if not comment:
        raise InvalidInputError("A reason is required.", fields={"comment": "Say why the recommendation is rejected."})
    if len(comment) > MAX_COMMENT:
        raise InvalidInputError("Comment too long.", fields={"comment": f"At most {MAX_COMMENT} characters."})
    with transaction.atomic():
        recommendation = _locked(recommendation_id)
        if not can_decide(advisor, recommendation):
            raise NotAllowedError("Only the investor's assigned advisor can reject this recommendation.")
        if recommendation.status not in (RecommendationStatus.PENDING, RecommendationStatus.BLOCKED):
            raise InvalidStateError(f"This recommendation is {recommendation.get_status_display().lower()}.")
        old_status = recommendation.status
        recommendation.status = RecommendationStatus.REJECTED
        recommendation.decided_by = advisor
        recommendation.decided_at = timezone.now()
        recommendation.decision_comment = comment
        recommendation.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
        audit_record(
            actor=advisor,
            action="recommendation.rejected",
            obj=recommendation,
            subject_id=recommendation.account.owner_id,
            payload={"comment": comment, "old_status": old_status},
        )
        recommendation_rejected(investor=recommendation.account.owner, recommendation_id=recommendation.pk)
    return recommendation


def _fill_price(asset_id: int, ticker: str, fill_date: date) -> Decimal:
    close = (
        Price.objects.filter(asset_id=asset_id, date__lte=fill_date).order_by("-date").values_list("close", flat=True)
    ).first()
    if close is None:
        raise InvalidStateError(f"No price of {ticker} on or before {fill_date}; the broker cannot fill.")
    return close


def order_fill(*, order_id: int, market_date: date | None = None) -> Fill | None:
    """Fill one order at the close of ``market_date`` (default: the latest market date), exactly once.

    The order row is locked and its status checked inside the transaction; the one-to-one ``Fill.order`` is the
    database's guarantee if two workers race. Returns ``None`` when the order was already filled (or is
    cancelled here because nothing is left to trade). A sell takes the lots the trade names, then the account's
    lot method, and records one realized gain per lot; a buy opens a lot. Either may wash a loss (docs/tax.md).
    """
    cost_rate: Decimal = settings.ADVISOR["TRADING_COST_RATE"]
    try:
        with transaction.atomic():
            order = (
                Order.objects.select_for_update(of=("self",))
                .select_related("account", "asset", "trade")
                .get(pk=order_id)
            )
            if order.status != OrderStatus.NEW:
                return None
            account = order.account
            # Serializes every cash and lot change of the investor: the wash-sale rule spans all their accounts.
            list(Account.objects.select_for_update().filter(owner_id=account.owner_id).order_by("id").values("id"))
            fill_date = market_date or market_date_latest()
            if fill_date is None:
                raise InvalidStateError("No prices are stored; the broker cannot fill.")
            price = _fill_price(order.asset_id, order.asset.ticker, fill_date)
            # A fill dated in the past (a replay) cannot sell shares bought after it.
            lots = list(
                Lot.objects.select_for_update()
                .filter(
                    account_id=order.account_id, asset_id=order.asset_id, quantity__gt=0, acquired_on__lte=fill_date
                )
                .order_by("acquired_on", "id")
            )
            cash = cash_balances([order.account_id]).get(order.account_id, ZERO)
            # Cash promised to pending withdrawals is not the buys' to spend (the plan kept it back too).
            reserved_sum = WithdrawalRequest.objects.filter(
                account_id=order.account_id, status=WithdrawalStatus.PENDING
            ).aggregate(total=Sum("amount"))["total"]
            reserved = Decimal(reserved_sum or 0).quantize(Decimal("0.01"))  # SQLite sums through floats
            spendable = max(cash - reserved, ZERO)
            quantity = order.quantity
            note = ""
            if order.side == TradeSide.SELL:
                held = sum((lot.quantity for lot in lots), ZERO)
                if quantity > held:
                    quantity, note = held, f"reduced from {order.quantity} to the {held} shares held"
                gross, cost = sell_cash_effect(quantity, price, cost_rate)
            else:
                gross, cost = buy_cash_effect(quantity, price, cost_rate)
                if gross + cost > spendable:
                    # The price moved since the proposal (or a withdrawal now waits): buy what the cash allows.
                    quantity = floor_shares((spendable - Decimal("0.02")) / (price * (1 + cost_rate)))
                    gross, cost = buy_cash_effect(quantity, price, cost_rate)
                    note = f"reduced from {order.quantity} to {quantity} shares to fit the cash"
                    if reserved:
                        note += f" not promised to pending withdrawals (${reserved:,.2f})"
            if quantity <= 0:
                order.status = OrderStatus.CANCELLED
                order.note = note or "nothing to trade"
                order.save(update_fields=["status", "note"])
                audit_record(
                    actor=None,
                    action="order.cancelled",
                    obj=order,
                    subject_id=account.owner_id,
                    payload={"reason": order.note},
                )
                return None
            fill = Fill.objects.create(
                order=order, quantity=quantity, price=price, gross_amount=gross, cost=cost, market_date=fill_date
            )
            tax_payload: dict[str, object]
            if order.side == TradeSide.SELL:
                realized = lots_sell(
                    account=account,
                    asset=order.asset,
                    lots=lots,
                    fill=fill,
                    quantity=quantity,
                    net_proceeds=gross - cost,
                    planned=planned_picks(order.trade.lots),
                    harvest=order.trade.purpose == TradePurpose.HARVEST,
                )
                washes = wash_sales_after_sale(account=account, asset=order.asset, realized=realized)
                rows = list(RealizedGain.objects.filter(fill=fill).order_by("id"))
                tax_payload = {"lots_sold": realized_payload(rows), "wash_sales": wash_payload(washes)}
                movements = [CashMovement(account=account, kind=CashMovementKind.SELL, amount=gross, fill=fill)]
            else:
                lot = Lot.objects.create(
                    account=account,
                    asset=order.asset,
                    original_quantity=quantity,
                    quantity=quantity,
                    cost_per_share=((gross + cost) / quantity).quantize(Decimal("0.000001")),
                    acquired_on=fill_date,
                    holding_start=fill_date,
                    fill=fill,
                )
                washes = wash_sales_after_buy(lot=lot)
                lot.refresh_from_db()
                tax_payload = {
                    "lot": lot.pk,
                    "cost_per_share": lot.cost_per_share,
                    "holding_start": lot.holding_start,
                    "wash_sales": wash_payload(washes),
                }
                movements = [CashMovement(account=account, kind=CashMovementKind.BUY, amount=-gross, fill=fill)]
            if cost > 0:
                movements.append(CashMovement(account=account, kind=CashMovementKind.FEE, amount=-cost, fill=fill))
            movements = [m for m in movements if m.amount != 0]  # a sell of a few millionths of a share brings $0
            for movement in movements:
                movement.description = f"{order.side} {quantity} {order.asset.ticker} @ {price}"
            CashMovement.objects.bulk_create(movements)
            order.status = OrderStatus.FILLED
            order.note = note
            order.save(update_fields=["status", "note"])
            cash_after = cash_balances([order.account_id]).get(order.account_id, ZERO)
            if cash_after < 0:
                raise InvalidStateError(f"Order {order.pk} would leave cash at {cash_after}.")
            audit_record(
                actor=None,
                action="order.filled",
                obj=order,
                subject_id=account.owner_id,
                payload={
                    "idempotency_key": order.idempotency_key,
                    "side": order.side,
                    "ticker": order.asset.ticker,
                    "quantity": quantity,
                    "price": price,
                    "market_date": fill_date,
                    "gross": gross,
                    "cost": cost,
                    "cash_after": cash_after,
                    "note": note,
                    **tax_payload,
                },
            )
            return fill
    except IntegrityError:
        # Another worker filled this order between our read and write.
        if Fill.objects.filter(order_id=order_id).exists():
            return None
        raise


def _withdrawals_settle(account_id: int) -> None:
    """Pay the account's pending withdrawals now that its sells have filled."""
    from .cashflows import withdrawals_settle  # cashflows locks accounts as the broker does: imported late

    withdrawals_settle(account_id=account_id)


def recommendation_execute(*, recommendation_id: int, market_date: date | None = None) -> Recommendation:
    """Fill every open order (sells first, so their cash funds the buys) at the close of ``market_date``
    (default: the latest market date); safe to run twice."""
    recommendation = Recommendation.objects.get(pk=recommendation_id)
    if recommendation.status == RecommendationStatus.EXECUTED:
        _withdrawals_settle(recommendation.account_id)
        return recommendation
    if recommendation.status != RecommendationStatus.APPROVED:
        raise InvalidStateError(f"Recommendation {recommendation_id} is {recommendation.status}, not approved.")
    order_ids = list(
        Order.objects.filter(recommendation_id=recommendation_id, status=OrderStatus.NEW)
        .order_by("-side", "id")  # "sell" sorts after "buy": descending puts sells first
        .values_list("id", flat=True)
    )
    for order_id in order_ids:
        order_fill(order_id=order_id, market_date=market_date)
    with transaction.atomic():
        claimed = Recommendation.objects.filter(pk=recommendation_id, status=RecommendationStatus.APPROVED).update(
            status=RecommendationStatus.EXECUTED, executed_at=timezone.now()
        )
        if claimed:
            recommendation.refresh_from_db()
            fills = Fill.objects.filter(order__recommendation_id=recommendation_id)
            realized = RealizedGain.objects.filter(fill__order__recommendation_id=recommendation_id).aggregate(
                gain=Sum("gain"), disallowed=Sum("wash_sale_disallowed")
            )
            audit_record(
                actor=None,
                action="recommendation.executed",
                obj=recommendation,
                subject_id=Account.objects.values_list("owner_id", flat=True).get(pk=recommendation.account_id),
                payload={
                    "fills": fills.count(),
                    "cancelled": Order.objects.filter(
                        recommendation_id=recommendation_id, status=OrderStatus.CANCELLED
                    ).count(),
                    "market_date": market_date,
                    "realized_gain": realized["gain"] or ZERO,
                    "wash_sale_disallowed": realized["disallowed"] or ZERO,
                },
            )
    _withdrawals_settle(recommendation.account_id)
    recommendation.refresh_from_db()
    return recommendation


def recommendations_expire(*, book: str, market_date: date) -> int:
    """Expire the book's pending and blocked recommendations proposed more than ``RECOMMENDATION_MAX_AGE_DAYS``
    before ``market_date``: their trades were sized at closes that have moved on, and while one is open its
    account gets no fresh proposal. Approved ones are the broker's and stay. Each expiry is audited (one chain
    append for all); a recommendation an advisor is deciding at the same moment is either decided or expired,
    never both (rows locked, status re-checked). Returns how many expired."""
    cutoff = market_date - timedelta(days=settings.ADVISOR["RECOMMENDATION_MAX_AGE_DAYS"])
    open_statuses = (RecommendationStatus.PENDING, RecommendationStatus.BLOCKED)
    with transaction.atomic():
        stale = list(
            Recommendation.objects.select_for_update()
            .filter(account__book=book, status__in=open_statuses, market_date__lt=cutoff)
            .order_by("pk")
            .values_list("pk", "status", "market_date", "account__owner_id")
        )
        if not stale:
            return 0
        now = timezone.now()
        Recommendation.objects.filter(pk__in=[pk for pk, *_ in stale], status__in=open_statuses).update(
            status=RecommendationStatus.EXPIRED,
            decided_at=now,
            decision_comment=f"Expired on {market_date}: proposed more than "
            f"{settings.ADVISOR['RECOMMENDATION_MAX_AGE_DAYS']} days earlier, at prices that have moved on.",
        )
        audit_record_many(
            [
                PendingEvent(
                    action="recommendation.expired",
                    object_type="portfolios.recommendation",
                    object_id=pk,
                    subject_id=owner_id,
                    payload={"old_status": status, "proposed_on": proposed_on, "expired_on": market_date},
                )
                for pk, status, proposed_on, owner_id in stale
            ]
        )
    return len(stale)

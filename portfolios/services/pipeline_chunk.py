"""One chunk of a pipeline run: the accounts of a range of investors, processed in one transaction.

Reads are a fixed number of bulk queries per chunk, whatever its size (no per-account query): accounts, risk
levels, preferences, cash balances, open lots, the wash-sale state of the last 30 days, pending withdrawals,
open recommendations, the run's personal targets. The rebalancing engine (``portfolios/rebalancer.py``) plans
every account at once on numpy arrays; only the accounts that trade go through the exact ``Decimal`` boundary,
and their recommendations, trades, compliance findings and audit events are written with bulk inserts.

An account that cannot be processed (a fund held without a price, constraints no portfolio satisfies, an error
in its own trades) is recorded in the chunk's ``failures`` with the reason; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from advisor.db import bulk_insert, reserve_ids
from compliance.audit import PendingEvent, audit_record_many
from compliance.models import Severity
from compliance.rules import Proposal, TradeLine
from compliance.services import CheckItem, recommendations_check_many, restricted_tickers

from .. import rebalancer as engine
from ..explain import binding_sentence, recommendation_explanation
from ..models import (
    TAX_ADVANTAGED_ACCOUNT_TYPES,
    Account,
    AccountType,
    Asset,
    AssetClass,
    ChunkStatus,
    Lot,
    ModelPortfolio,
    PersonalTarget,
    PipelineChunk,
    PipelineRun,
    RealizedGain,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    Trade,
    TradeSide,
    WithdrawalRequest,
    WithdrawalStatus,
)
from ..rebalance import CENT, ZERO
from ..selectors import cash_balances, current_risk_levels, prices_as_of, rebalancing_policy_current
from ..tax import first_long_term_day, long_term_rate, short_term_rate
from ..universe import ESG_FLAGS_BY_TICKER
from .pipeline import OPEN_STATUSES, STALE_PRICE_DAYS, latch_count, pipeline_finish
from .targets import InvestorTerms, investor_terms, personal_targets_build

logger = logging.getLogger(__name__)
WASH_SALE_DAYS = 30
# Estimates for a taxable account whose owner has not stated a marginal rate use this one (documented).
DEFAULT_MARGINAL_RATE = Decimal("0.24")
MUNICIPAL_CLASS = "municipal"
LOT_METHOD_CODES = {code: i for i, code in enumerate(engine.LOT_METHODS)}


# --- the market of the day: the same for every chunk of a run -------------------------------------------------


@dataclass(frozen=True)
class _Market:
    tickers: tuple[str, ...]
    asset_ids: tuple[int, ...]
    index_of: Mapping[int, int]  # asset id -> index
    class_codes: tuple[str, ...]
    class_names: Mapping[str, str]
    class_of: tuple[str, ...]  # per asset
    model_fund: Mapping[str, int]  # class code -> index of the model fund of the class
    universe: engine.UniverseArrays
    prices: Mapping[str, Decimal]  # ticker -> close used today (only funds with a usable price)
    stale: Mapping[str, date]  # ticker -> date of its latest close, when too old to trade on


def _market(market_date: date) -> _Market:
    assets = list(
        Asset.objects.select_related("asset_class")
        .order_by("id")
        .values_list("id", "ticker", "asset_class__code", "substitute_id", "tracks_index", "in_model_universe")
    )
    class_rows = list(AssetClass.objects.order_by("display_order", "code").values_list("code", "name"))
    class_codes = tuple(code for code, _ in class_rows)
    class_index = {code: k for k, code in enumerate(class_codes)}
    index_of = {asset_id: i for i, (asset_id, *_rest) in enumerate(assets)}
    groups = {name: g for g, name in enumerate(sorted({row[4] or row[1] for row in assets}))}
    closes = prices_as_of(market_date)
    oldest = market_date - timedelta(days=STALE_PRICE_DAYS)
    price = np.full(len(assets), np.nan)
    prices: dict[str, Decimal] = {}
    stale: dict[str, date] = {}
    for i, (asset_id, ticker, *_rest) in enumerate(assets):
        if asset_id in closes:
            close, day = closes[asset_id]
            if day >= oldest:
                price[i] = float(close)
                prices[ticker] = close
            else:
                stale[ticker] = day
    universe = engine.UniverseArrays(
        tickers=tuple(row[1] for row in assets),
        asset_class=np.array([class_index[row[2]] for row in assets], dtype=np.int64),
        class_codes=class_codes,
        wash_group=np.array([groups[row[4] or row[1]] for row in assets], dtype=np.int64),
        substitute=np.array([index_of.get(row[3], -1) if row[3] else -1 for row in assets], dtype=np.int64),
        price=price,
    )
    return _Market(
        tickers=universe.tickers,  # type: ignore[arg-type]
        asset_ids=tuple(row[0] for row in assets),
        index_of=index_of,
        class_codes=class_codes,
        class_names=dict(class_rows),
        class_of=tuple(row[2] for row in assets),
        model_fund={row[2]: i for i, row in enumerate(assets) if row[5]},
        universe=universe,
        prices=prices,
        stale=stale,
    )


# --- reads --------------------------------------------------------------------------------------------------


@dataclass
class _AccountRow:
    id: int
    owner_id: int
    name: str
    account_type: str
    lot_method: str
    level: int | None = None
    terms: InvestorTerms = field(default_factory=InvestorTerms)
    target: PersonalTarget | None = None
    skip: str = ""  # why the engine does not plan this account (counted, not a failure)
    failure: str = ""  # why it could not be planned (recorded unless it is skipped anyway)
    settle_failure: str = ""  # paying its pending withdrawals failed: recorded even when it is skipped


@dataclass
class _Chunk:
    run: PipelineRun
    chunk: PipelineChunk
    market: _Market
    accounts: list[_AccountRow]
    cash: dict[int, Decimal]
    withdrawals: dict[int, list[tuple[int, Decimal]]]  # account -> pending (id, amount), oldest first
    lots: list[tuple[int, int, int, Decimal, Decimal, date, date | None]]  # account, lot, asset, qty, basis, ...
    loss_sold: set[tuple[int, int]]  # (owner, asset index)
    recent_buys: set[tuple[int, int]]
    failures: list[dict[str, object]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # The chunk's audit events, in the order of its changes: appended to the chain at the end of its transaction
    # (the chain's lock is held from the first append to the commit: taken early, it would serialize chunks).
    audit: list[PendingEvent] = field(default_factory=list)


def _read(run: PipelineRun, chunk: PipelineChunk, market: _Market, counts: Counter[str]) -> _Chunk:
    owners = (chunk.first_owner_id, chunk.last_owner_id)
    in_book = {"book": run.book, "owner__id__range": owners}
    accounts = [
        _AccountRow(*row)
        for row in Account.objects.filter(**in_book)
        .order_by("owner_id", "id")
        .values_list("id", "owner_id", "name", "account_type", "lot_method")
    ]
    ids = [a.id for a in accounts]
    owner_ids = sorted({a.owner_id for a in accounts})
    levels = current_risk_levels(owner_ids)
    terms = investor_terms(owner_ids)
    for a in accounts:
        a.level = levels.get(a.owner_id)
        a.terms = terms[a.owner_id]
    by_account = {"account__book": run.book, "account__owner__id__range": owners}
    cash = cash_balances(ids)
    withdrawals: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for withdrawal_id, account_id, amount in (
        WithdrawalRequest.objects.filter(**by_account, status=WithdrawalStatus.PENDING)
        .order_by("requested_at", "id")
        .values_list("id", "account_id", "amount")
    ):
        withdrawals[account_id].append((withdrawal_id, amount))
    lots = list(
        Lot.objects.filter(**by_account, quantity__gt=0)
        .order_by("account_id", "asset_id", "id")
        .values_list("account_id", "id", "asset_id", "quantity", "cost_per_share", "acquired_on", "holding_start")
    )
    since = run.market_date - timedelta(days=WASH_SALE_DAYS)
    # The wash-sale rule spans all of an investor's accounts, whatever their book.
    loss_sold = {
        (owner, market.index_of[asset_id])
        for owner, asset_id in RealizedGain.objects.filter(
            account__owner__id__range=owners,
            account__account_type=AccountType.TAXABLE,
            sold_on__gte=since,
            sold_on__lte=run.market_date,
            gain__lt=0,
        ).values_list("account__owner_id", "asset_id")
    }
    recent_buys = {
        (owner, market.index_of[asset_id])
        for owner, asset_id in Lot.objects.filter(
            account__owner__id__range=owners, acquired_on__gte=since, acquired_on__lte=run.market_date
        ).values_list("account__owner_id", "asset_id")
    }
    # Trades still waiting for the advisor or the broker count as if done: a loss sale another account of the
    # investor was proposed yesterday, or a buy it was approved, would otherwise be washed by today's proposal
    # (approval re-checks, but a proposal it must refuse only wastes the advisor's time).
    for owner, asset_id, side, gain, account_type in Trade.objects.filter(
        recommendation__account__owner__id__range=owners, recommendation__status__in=OPEN_STATUSES
    ).values_list(
        "recommendation__account__owner_id",
        "asset_id",
        "side",
        "estimated_gain",
        "recommendation__account__account_type",
    ):
        if asset_id not in market.index_of:
            continue
        if side == TradeSide.BUY:
            recent_buys.add((owner, market.index_of[asset_id]))
        elif gain < 0 and account_type == AccountType.TAXABLE:
            loss_sold.add((owner, market.index_of[asset_id]))
    busy = set(
        Recommendation.objects.filter(**by_account, status__in=OPEN_STATUSES).values_list("account_id", flat=True)
    )
    done = set(Recommendation.objects.filter(**by_account, pipeline_run=run).values_list("account_id", flat=True))
    for a in accounts:
        if a.id in done:
            a.skip = "already_recommended"
        elif a.level is None:
            a.skip = "no_profile"
        elif a.id in busy:
            a.skip = "awaiting_decision"
    return _Chunk(run, chunk, market, accounts, cash, withdrawals, lots, loss_sold, recent_buys, counts=counts)


def _targets(data: _Chunk) -> None:
    """Each profiled account's personal target for the run (shared rows; missing ones are solved once). Accounts
    that wait for a decision get theirs too: the dashboard measures drift against it."""
    run = data.run
    assert run.optimization_run is not None  # noqa: S101 - the prepare stage sets it before any chunk exists
    wanted = [a for a in data.accounts if a.level is not None]
    failures: list[str] = []
    built = personal_targets_build(
        optimization_run=run.optimization_run,
        accounts_with_levels=[
            (
                Account(id=a.id, owner_id=a.owner_id, name=a.name, account_type=a.account_type, book=run.book),
                a.level or 0,
            )
            for a in wanted
        ],
        failures=failures,
        audit_events=data.audit,
    )
    reasons = {}
    for message in failures:
        account_id = int(message.split()[1])
        reasons[account_id] = message.split(": ", 1)[1] if ": " in message else message
    for a in wanted:
        a.target = built.get(a.id)
        if a.target is None and not a.skip:
            a.failure = reasons.get(a.id, "no personal target could be built")


# --- arrays for the engine ------------------------------------------------------------------------------------


def _allowed(market: _Market, target: PersonalTarget, terms: InvestorTerms, restricted: frozenset[str]) -> np.ndarray:
    """The funds an account with this target may buy: not restricted, not caught by its ESG screens, and no
    municipal fund where the target's tax rule excludes them."""
    screens = set(terms.screens)
    constraints = target.constraints or {}
    no_munis = constraints.get("account_type") in TAX_ADVANTAGED_ACCOUNT_TYPES or bool(
        constraints.get("municipal_rate_floor")
    )
    excluded = set(constraints.get("exclusions", {}))
    return np.array(
        [
            ticker not in restricted
            and ticker not in excluded
            and not (set(ESG_FLAGS_BY_TICKER.get(ticker, ())) & screens)
            and not (no_munis and market.class_of[i] == MUNICIPAL_CLASS)
            for i, ticker in enumerate(market.tickers)
        ],
        dtype=bool,
    )


def _arrays(
    data: _Chunk, policy_rates: Mapping[int, tuple[Decimal, Decimal]]
) -> tuple[engine.TargetArrays, engine.BookArrays, list[_AccountRow]]:
    market = data.market
    restricted = restricted_tickers()
    planned = [a for a in data.accounts if not a.failure]
    held_without_price: dict[int, set[str]] = defaultdict(set)
    for account_id, _lot, asset_id, *_rest in data.lots:
        ticker = market.tickers[market.index_of[asset_id]]
        if ticker not in market.prices:
            held_without_price[account_id].add(ticker)
    for a in planned:
        if a.id in held_without_price:
            missing = sorted(held_without_price[a.id])
            dates = ", ".join(f"{t} (latest close {market.stale[t]})" if t in market.stale else t for t in missing)
            a.failure = f"no usable price on {data.run.market_date} for {dates}"
        elif a.lot_method not in LOT_METHOD_CODES:
            # A value outside the field's choices (an admin edit, a bad import): the engine cannot pick lots.
            a.failure = f"unknown lot method {a.lot_method!r} (one of {', '.join(engine.LOT_METHODS)} expected)"
    planned = [a for a in planned if not a.failure]
    row_of = {a.id: i for i, a in enumerate(planned)}

    target_keys: dict[tuple[int, tuple[str, ...]], int] = {}
    weights: list[np.ndarray] = []
    buy_assets: list[np.ndarray] = []
    allowed: list[np.ndarray] = []
    target_row = np.full(len(planned), -1, dtype=np.int64)
    classes = len(market.class_codes)
    class_index = {code: k for k, code in enumerate(market.class_codes)}
    for i, a in enumerate(planned):
        if a.skip or a.target is None:
            continue
        key = (a.target.pk, a.terms.screens)
        if key not in target_keys:
            target_keys[key] = len(weights)
            class_weights = np.zeros(classes)
            buy = np.full(classes, -1, dtype=np.int64)
            for ticker, weight in a.target.weights.items():
                asset = market.tickers.index(ticker)
                k = class_index[market.class_of[asset]]
                class_weights[k] += float(Decimal(weight))
                buy[k] = asset
            weights.append(class_weights)
            buy_assets.append(buy)
            allowed.append(_allowed(market, a.target, a.terms, restricted))
        target_row[i] = target_keys[key]
    targets = engine.TargetArrays(
        weights=np.array(weights, dtype=np.float64).reshape(len(weights), classes),
        buy_asset=np.array(buy_assets, dtype=np.int64).reshape(len(weights), classes),
        allowed=np.array(allowed, dtype=bool).reshape(len(weights), len(market.tickers)),
    )

    lot_rows = [lot for lot in data.lots if lot[0] in row_of]
    lot_rows.sort(key=lambda lot: (row_of[lot[0]], market.index_of[lot[2]], lot[1]))
    groups = market.universe.wash_group
    group_count = market.universe.group_count
    planned_owners = {a.owner_id for a in planned}

    def keys(pairs: Iterable[tuple[int, int]]) -> np.ndarray:
        return np.unique(
            np.array(
                [owner * group_count + int(groups[asset]) for owner, asset in pairs if owner in planned_owners],
                dtype=np.int64,
            )
        )

    book = engine.BookArrays(
        account_id=np.array([a.id for a in planned], dtype=np.int64),
        owner=np.array([a.owner_id for a in planned], dtype=np.int64),
        taxable=np.array([a.account_type == AccountType.TAXABLE for a in planned], dtype=bool),
        lot_method=np.array([LOT_METHOD_CODES[a.lot_method] for a in planned], dtype=np.int8),
        short_rate=np.array([float(policy_rates[a.id][0]) for a in planned], dtype=np.float64),
        long_rate=np.array([float(policy_rates[a.id][1]) for a in planned], dtype=np.float64),
        cash=np.array([float(max(data.cash.get(a.id, ZERO), ZERO)) for a in planned], dtype=np.float64),
        withdrawal=np.array(
            [float(sum((amount for _, amount in data.withdrawals.get(a.id, [])), ZERO)) for a in planned],
            dtype=np.float64,
        ),
        target=target_row,
        lot_account=np.array([row_of[lot[0]] for lot in lot_rows], dtype=np.int64),
        lot_id=np.array([lot[1] for lot in lot_rows], dtype=np.int64),
        lot_asset=np.array([market.index_of[lot[2]] for lot in lot_rows], dtype=np.int64),
        lot_quantity=np.array([float(lot[3]) for lot in lot_rows], dtype=np.float64),
        lot_basis=np.array([float(lot[4]) for lot in lot_rows], dtype=np.float64),
        lot_acquired=np.array([lot[5].toordinal() for lot in lot_rows], dtype=np.int64),
        lot_long_from=np.array([first_long_term_day(lot[6] or lot[5]).toordinal() for lot in lot_rows], dtype=np.int64),
        loss_sold=keys(data.loss_sold),
        recent_buys=keys(data.recent_buys),
    )
    return targets, book, planned


def _rates(accounts: Sequence[_AccountRow]) -> dict[int, tuple[Decimal, Decimal]]:
    rates = {}
    for a in accounts:
        if a.account_type in TAX_ADVANTAGED_ACCOUNT_TYPES:
            rates[a.id] = (ZERO, ZERO)
        else:
            marginal = a.terms.marginal_tax_rate if a.terms.marginal_tax_rate is not None else DEFAULT_MARGINAL_RATE
            rates[a.id] = (short_term_rate(marginal), long_term_rate(marginal))
    return rates


# --- the chunk ------------------------------------------------------------------------------------------------


def pipeline_chunk_process(*, chunk_id: int) -> PipelineChunk:
    """Process one chunk exactly once: claimed by a conditional update inside the transaction that writes its
    results, so a second delivery waits for the first and then finds it done (or, if the first died, does it)."""
    started = time.perf_counter()
    last = False
    with transaction.atomic():
        claimed = PipelineChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
            attempts=F("attempts") + 1
        )
        chunk = PipelineChunk.objects.select_related("run__optimization_run").get(pk=chunk_id)
        if not claimed:
            return chunk  # already done by an earlier delivery
        run = chunk.run
        timings: dict[str, float] = {}
        counts: Counter[str] = Counter()
        t0 = time.perf_counter()
        market = _market(run.market_date)  # a few hundred rows: read per chunk, never stale
        data = _read(run, chunk, market, counts)
        _settle_withdrawals(data)
        timings["read_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _targets(data)
        timings["targets_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rates = _rates(data.accounts)
        version, rebalancing = rebalancing_policy_current()
        cost_rate: Decimal = settings.ADVISOR["TRADING_COST_RATE"]
        targets, book, planned = _arrays(data, rates)
        plan = engine.rebalance_plan(
            market.universe,
            targets,
            book,
            engine.EnginePolicy.from_policy(rebalancing, cost_rate=cost_rate),
            run.market_date.toordinal(),
        )
        timings["plan_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        proposals = _proposals(data, planned, plan, rates, rebalancing.min_trade, cost_rate)
        timings["exact_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        created = _write(data, proposals, policy_version=version, min_trade=rebalancing.min_trade)
        timings["write_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        audit_record_many(data.audit)  # last: the chain's lock is held only from here to the commit
        timings["audit_seconds"] = time.perf_counter() - t0
        for p in proposals:
            # Recommendations by what triggered them (one may have several triggers: cash and drift, ...).
            counts.update(f"trigger_{kind}" for kind in sorted({t["type"] for t in p.triggers}))
        for a in data.accounts:
            counts["accounts_seen"] += 1
            if a.skip:
                counts[a.skip] += 1
            failure = a.settle_failure or ("" if a.skip else a.failure)
            if failure:
                data.failures.append({"account": a.id, "name": a.name, "error": failure})
        counts["recommendations"] += created
        timings["total_seconds"] = time.perf_counter() - started
        chunk.status = ChunkStatus.SUCCEEDED
        chunk.counts = dict(counts)
        chunk.timings = {k: round(v, 4) for k, v in timings.items()}
        chunk.failures = data.failures
        chunk.error = ""
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["status", "counts", "timings", "failures", "error", "finished_at"])
        last = latch_count(run.pk)
    if last:
        pipeline_finish(run_id=run.pk)
    return chunk


def _settle_withdrawals(data: _Chunk) -> None:
    """Pending withdrawals that the cash now covers (a deposit arrived, sells filled) are paid before planning."""
    from .cashflows import withdrawals_settle

    row_of = {a.id: a for a in data.accounts}
    for account_id, pending in list(data.withdrawals.items()):
        if data.cash.get(account_id, ZERO) >= pending[0][1]:
            try:
                # Its own savepoint: a failure rolls back this account's payment only.
                events: list[PendingEvent] = []
                paid = withdrawals_settle(account_id=account_id, audit_events=events)
            except OperationalError:
                raise  # a lost connection or a deadlock is the chunk's: the task retries it
            except Exception as exc:  # one account's bad data fails that account only, named, with the reason
                logger.exception("pipeline: withdrawals of account %s failed", account_id)
                failed = row_of[account_id]
                failed.failure = failed.settle_failure = f"paying its pending withdrawals: {type(exc).__name__}: {exc}"
                continue
            data.audit.extend(events)
            data.counts["withdrawals_paid"] += len(paid)
            data.cash[account_id] = cash_balances([account_id]).get(account_id, ZERO)
            paid_ids = {w.pk for w in paid}
            data.withdrawals[account_id] = [(i, amount) for i, amount in pending if i not in paid_ids]


# --- from the plan to recommendations -------------------------------------------------------------------------


@dataclass
class _Proposal:
    account: _AccountRow
    row: int
    trades: list[engine.PlannedTrade]
    cash: Decimal
    total: Decimal
    holdings: dict[str, Decimal]
    triggers: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    kind: str
    realized_short: Decimal
    realized_long: Decimal
    harvested_loss: Decimal
    estimated_tax: Decimal
    lot_gains: dict[int, tuple[Decimal, str]]  # lot id -> (gain per share, term)
    wash_blocked: frozenset[str]
    withdrawal_id: int | None


def _proposals(
    data: _Chunk,
    planned: list[_AccountRow],
    plan: engine.Plan,
    rates: Mapping[int, tuple[Decimal, Decimal]],
    min_trade: Decimal,
    cost_rate: Decimal,
) -> list[_Proposal]:
    market = data.market
    counts = data.counts
    lots_of: dict[int, list[tuple[int, int, int, Decimal, Decimal, date, date | None]]] = defaultdict(list)
    for lot in data.lots:
        lots_of[lot[0]].append(lot)
    # Groups each owner may not buy today: sold at a loss in the last 30 days or in this plan (any account).
    blocked_groups: dict[int, set[int]] = defaultdict(set)
    groups = market.universe.wash_group
    for owner, asset in data.loss_sold:
        blocked_groups[owner].add(int(groups[asset]))
    losses = plan.sale_gain < 0
    for s in np.flatnonzero(losses).tolist():
        trade = int(plan.sale_trade[s])
        row = int(plan.trade_account[trade])
        if planned[row].account_type == AccountType.TAXABLE:
            blocked_groups[planned[row].owner_id].add(int(groups[int(plan.trade_asset[trade])]))
    tickers_of_group: dict[int, list[str]] = defaultdict(list)
    for i, ticker in enumerate(market.tickers):
        tickers_of_group[int(groups[i])].append(ticker)

    proposals: list[_Proposal] = []
    for row, a in enumerate(planned):
        status = int(plan.status[row])
        if status == engine.STATUS_EMPTY:
            counts["empty"] += 1
            continue
        if status == engine.STATUS_NO_TARGET:
            continue  # skipped or failed before the engine: counted there
        if status == engine.STATUS_NO_PRICE:  # _arrays removes these; the engine checks again
            a.failure = a.failure or "a held fund has no price"
            continue
        if status == engine.STATUS_IN_BAND:
            counts["in_band"] += 1
            continue
        trigger = int(plan.trigger[row])
        if trigger & engine.TRIGGER_SHORT_TERM_REDUCED:
            counts["short_term_reduced"] += 1
        if status == engine.STATUS_DEFERRED:
            counts["deferred_short_term"] += 1
            continue
        try:
            proposal = _proposal(data, a, row, plan, lots_of[a.id], rates[a.id], min_trade, cost_rate)
        except Exception as exc:  # one account's bad data fails that account only, named, with the reason
            logger.exception("pipeline: account %s failed", a.id)
            a.failure = f"{type(exc).__name__}: {exc}"
            continue
        if proposal is None:
            counts["no_trades"] += 1
            continue
        blocked = blocked_groups.get(a.owner_id, set())
        proposal.wash_blocked = frozenset(t for g in blocked for t in tickers_of_group[g])
        proposals.append(proposal)
    return proposals


def _proposal(
    data: _Chunk,
    a: _AccountRow,
    row: int,
    plan: engine.Plan,
    lots: list[tuple[int, int, int, Decimal, Decimal, date, date | None]],
    rates: tuple[Decimal, Decimal],
    min_trade: Decimal,
    cost_rate: Decimal,
) -> _Proposal | None:
    market = data.market
    cash = max(data.cash.get(a.id, ZERO), ZERO)
    pending = data.withdrawals.get(a.id, [])
    reserve = sum((amount for _, amount in pending), ZERO)
    holdings: dict[str, Decimal] = defaultdict(lambda: ZERO)
    lot_left: dict[int, Decimal] = {}
    basis: dict[int, tuple[Decimal, date]] = {}
    for _account, lot_id, asset_id, quantity, cost, acquired, start in lots:
        ticker = market.tickers[market.index_of[asset_id]]
        holdings[ticker] += quantity
        lot_left[lot_id] = quantity
        basis[lot_id] = (cost, start or acquired)
    trades = engine.exact_trades(
        plan,
        row,
        tickers=market.tickers,
        lots=lot_left,
        holdings=holdings,
        cash=cash,
        prices=market.prices,
        cost_rate=cost_rate,
        min_trade=min_trade,
        reserve=min(reserve, cash + sum((q * market.prices[t] for t, q in holdings.items()), ZERO)),
    )
    if not trades:
        return None
    today = data.run.market_date
    realized = {"short": ZERO, "long": ZERO}
    harvested = ZERO
    lot_gains: dict[int, tuple[Decimal, str]] = {}
    for trade in trades:
        for pick in trade.lots:
            cost, start = basis[pick.lot_id]
            gain = ((trade.price - cost) * pick.quantity).quantize(CENT)
            term = "long" if today >= first_long_term_day(start) else "short"
            lot_gains[pick.lot_id] = (trade.price - cost, term)
            realized[term] += gain
            if trade.purpose == "harvest" and gain < 0:
                harvested -= gain
    short_rate, long_rate = rates
    estimated_tax = (realized["short"] * short_rate + realized["long"] * long_rate).quantize(CENT)
    total = (cash + sum((q * market.prices[t] for t, q in holdings.items()), ZERO)).quantize(CENT)
    trigger = int(plan.trigger[row])
    purposes = {t.purpose for t in trades}
    if "withdrawal" in purposes:
        kind = RecommendationKind.WITHDRAWAL
    elif "rebalance" in purposes:
        kind = RecommendationKind.REBALANCE
    elif "harvest" in purposes:
        kind = RecommendationKind.TAX_LOSS_HARVEST
    elif "switch_back" in purposes:
        kind = RecommendationKind.SWITCH_BACK
    else:
        kind = RecommendationKind.INVEST_CASH
    return _Proposal(
        account=a,
        row=row,
        trades=trades,
        cash=cash,
        total=total,
        holdings=dict(holdings),
        triggers=_triggers(data, a, row, plan, trigger, cash, total, reserve, trades, lot_gains, min_trade),
        drift=_drift(market, row, plan),
        kind=kind,
        realized_short=realized["short"],
        realized_long=realized["long"],
        harvested_loss=harvested,
        estimated_tax=estimated_tax,
        lot_gains=lot_gains,
        wash_blocked=frozenset(),
        withdrawal_id=pending[0][0] if pending and "withdrawal" in purposes else None,
    )


def _drift(market: _Market, row: int, plan: engine.Plan) -> list[dict[str, Any]]:
    rows = []
    for k, code in enumerate(market.class_codes):
        current, drift, band = float(plan.weights[row, k]), float(plan.drift[row, k]), float(plan.band[row, k])
        target = current - drift
        if current == 0 and target == 0:
            continue
        rows.append(
            {
                "asset_class": code,
                "name": market.class_names[code],
                "current": _weight(current),
                "target": _weight(target),
                "drift": _weight(drift),
                "band": _weight(band),
            }
        )
    return rows


def _weight(value: float) -> str:
    return str(Decimal(repr(value)).quantize(Decimal("0.000001")))


def _triggers(
    data: _Chunk,
    a: _AccountRow,
    row: int,
    plan: engine.Plan,
    trigger: int,
    cash: Decimal,
    total: Decimal,
    reserve: Decimal,
    trades: Sequence[engine.PlannedTrade],
    lot_gains: Mapping[int, tuple[Decimal, str]],
    min_trade: Decimal,
) -> list[dict[str, Any]]:
    market = data.market
    found: list[dict[str, Any]] = []
    if trigger & engine.TRIGGER_WITHDRAWAL:
        found.append({"type": "withdrawal", "amount": str(reserve), "cash": str(cash)})
    if trigger & engine.TRIGGER_CASH:
        idle = cash - reserve
        found.append({"type": "cash", "amount": str(idle), "weight": _weight(float(idle / total) if total else 0.0)})
    if trigger & engine.TRIGGER_DRIFT:
        for k, code in enumerate(market.class_codes):
            drift, band = float(plan.drift[row, k]), float(plan.band[row, k])
            if abs(drift) > band and abs(drift) * float(plan.value[row]) >= float(min_trade):
                current = float(plan.weights[row, k])
                found.append(
                    {
                        "type": "drift",
                        "asset_class": code,
                        "name": market.class_names[code],
                        "current": _weight(current),
                        "target": _weight(current - drift),
                        "drift": _weight(drift),
                        "band": _weight(band),
                        "total_drift": _weight(float(plan.total_drift[row])),
                    }
                )
    harvests = [t for t in trades if t.purpose == "harvest"]
    if harvests:
        lots = [
            {
                "ticker": t.ticker,
                "lot": pick.lot_id,
                "quantity": str(pick.quantity),
                "loss": str((-lot_gains[pick.lot_id][0] * pick.quantity).quantize(CENT)),
            }
            for t in harvests
            for pick in t.lots
        ]
        substitutes = sorted({t.ticker for t in trades if t.purpose == "substitute"})
        found.append({"type": "harvest", "lots": lots, "substitutes": substitutes})
    if any(t.purpose == "switch_back" for t in trades):
        found.append(
            {
                "type": "switch_back",
                "sold": sorted({t.ticker for t in trades if t.purpose == "switch_back" and t.side == "sell"}),
                "bought": sorted({t.ticker for t in trades if t.purpose == "switch_back" and t.side == "buy"}),
            }
        )
    for bit, name in (
        (engine.TRIGGER_SHORT_TERM_REDUCED, "short_term_reduced"),
        (engine.TRIGGER_NO_BUY_FUND, "no_buy_fund"),
    ):
        if trigger & bit:
            found.append({"type": name})
    return found


def investor_constraints(target: PersonalTarget | None) -> tuple[str, ...]:
    """The constraints of the investor or the account that shape ``target``, in plain words, for compliance.

    Only what removes assets for them (ESG screens, the restricted list, no municipal bonds where they do not
    help) excuses a target below its level's volatility band; house limits at their bound are the model's own
    choice and never do."""
    rows = target.binding if target is not None else []
    return tuple(binding_sentence(b) for b in rows if b["kind"] == "exclusion")


def _write(data: _Chunk, proposals: list[_Proposal], *, policy_version: int, min_trade: Decimal) -> int:
    """Recommendations, trades, findings and audit events of the chunk, in bulk; returns how many were made.

    Recommendations and trades go through ``bulk_insert`` (COPY on Postgres): the recommendations' ids are
    reserved first so the trades, findings and audit events can point to them without reading them back."""
    if not proposals:
        return 0
    run = data.run
    market = data.market
    asset_id_of = dict(zip(market.tickers, market.asset_ids, strict=True))
    portfolio_of = dict(ModelPortfolio.objects.filter(run_id=run.optimization_run_id).values_list("risk_level", "pk"))
    recommendation_ids = reserve_ids(Recommendation, len(proposals))
    bulk_insert(
        Recommendation,
        [
            "id",
            "account_id",
            "pipeline_run_id",
            "model_portfolio_id",
            "personal_target_id",
            "withdrawal_id",
            "kind",
            "status",
            "risk_level",
            "market_date",
            "triggers",
            "drift",
            "explanation",
            "total_value",
            "cash_before",
            "estimated_cost",
            "realized_short_term",
            "realized_long_term",
            "harvested_loss",
            "estimated_tax",
        ],
        (
            (
                rec_id,
                p.account.id,
                run.pk,
                portfolio_of[p.account.level or 0],
                p.account.target.pk if p.account.target else None,
                p.withdrawal_id,
                p.kind,
                RecommendationStatus.PENDING.value,
                p.account.level or 0,
                run.market_date,
                p.triggers,
                p.drift,
                recommendation_explanation(
                    level=p.account.level or 0,
                    binding=p.account.target.binding if p.account.target else [],
                    triggers=p.triggers,
                    trades=p.trades,
                    realized_short=p.realized_short,
                    realized_long=p.realized_long,
                    harvested_loss=p.harvested_loss,
                    estimated_tax=p.estimated_tax,
                ),
                p.total,
                p.cash,
                sum((t.cost for t in p.trades), ZERO),
                p.realized_short,
                p.realized_long,
                p.harvested_loss,
                p.estimated_tax,
            )
            for rec_id, p in zip(recommendation_ids, proposals, strict=True)
        ),
    )
    bulk_insert(
        Trade,
        [
            "recommendation_id",
            "asset_id",
            "side",
            "purpose",
            "quantity",
            "price",
            "amount",
            "cash_effect",
            "lots",
            "estimated_gain",
        ],
        (
            row
            for rec_id, p in zip(recommendation_ids, proposals, strict=True)
            for row in _trade_rows(rec_id, p, asset_id_of)
        ),
    )
    data.audit.extend(
        [
            PendingEvent(
                action="recommendation.created",
                object_type="portfolios.recommendation",
                object_id=rec_id,
                subject_id=p.account.owner_id,
                payload={
                    "account_id": p.account.id,
                    "kind": p.kind,
                    "risk_level": p.account.level,
                    "personal_target_id": p.account.target.pk if p.account.target else None,
                    "rebalancing_policy_version": policy_version,
                    "triggers": [t["type"] for t in p.triggers],
                    "estimated_tax": p.estimated_tax,
                    "trades": [
                        {
                            "ticker": t.ticker,
                            "side": t.side,
                            "purpose": t.purpose,
                            "quantity": t.quantity,
                            "price": t.price,
                            "amount": t.amount,
                        }
                        for t in p.trades
                    ],
                },
            )
            for rec_id, p in zip(recommendation_ids, proposals, strict=True)
        ]
    )
    results = recommendations_check_many(
        [
            CheckItem(
                recommendation_id=rec_id,
                subject_id=p.account.owner_id,
                proposal=Proposal(
                    risk_level=p.account.level or 0,
                    cash_before=p.cash,
                    holdings_before=p.holdings,
                    prices={t: market.prices[t] for t in p.holdings} | {t.ticker: t.price for t in p.trades},
                    trades=[TradeLine(t.ticker, t.side, t.quantity, t.price, t.cash_effect) for t in p.trades],
                    target_volatility=float(p.account.target.volatility) if p.account.target else 0.0,
                    wash_sale_blocked=p.wash_blocked,
                    investor_constraints=investor_constraints(p.account.target),
                ),
            )
            for rec_id, p in zip(recommendation_ids, proposals, strict=True)
        ],
        min_trade=min_trade,
        audit_events=data.audit,
    )
    blocked = [rec_id for rec_id, found in results.items() if any(r.severity == Severity.BLOCK for r in found)]
    if blocked:
        Recommendation.objects.filter(pk__in=blocked).update(status=RecommendationStatus.BLOCKED)
    counts = data.counts
    counts["blocked_by_compliance"] += len(blocked)
    for p in proposals:
        counts[f"recommendations_{p.kind}"] += 1
        if p.harvested_loss > 0:
            counts["harvests"] += 1
    return len(recommendation_ids)


def _trade_rows(recommendation_id: int, p: _Proposal, asset_id_of: Mapping[str, int]) -> Iterator[tuple[Any, ...]]:
    """The trades of one recommendation as ``bulk_insert`` rows, each with its lot picks and their gains."""
    for t in p.trades:
        gains = [(p.lot_gains[pick.lot_id][0] * pick.quantity).quantize(CENT) for pick in t.lots]
        yield (
            recommendation_id,
            asset_id_of[t.ticker],
            t.side,
            t.purpose,
            t.quantity,
            t.price,
            t.amount,
            t.cash_effect,
            [
                {
                    "lot": pick.lot_id,
                    "quantity": str(pick.quantity),
                    "gain": str(gain),
                    "term": p.lot_gains[pick.lot_id][1],
                }
                for pick, gain in zip(t.lots, gains, strict=True)
            ],
            sum(gains, ZERO),
        )

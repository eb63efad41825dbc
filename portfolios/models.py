"""Market data, model portfolios, accounts (cash ledger and tax lots), recommendations and orders.

Money is ``NUMERIC``: cash to the cent, quantities to the broker's step of 1e-6
shares, prices to 1e-6 dollars.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


def money_field() -> models.DecimalField:
    return models.DecimalField(max_digits=18, decimal_places=2)


def quantity_field() -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=6)


def price_field() -> models.DecimalField:
    return models.DecimalField(max_digits=18, decimal_places=6)


def weight_field() -> models.DecimalField:
    return models.DecimalField(max_digits=9, decimal_places=6)


class AssetClassKind(models.TextChoices):
    EQUITY = "equity", "Equity"
    BOND = "bond", "Bond"
    REAL_ASSET = "real_asset", "Real asset"
    CASH = "cash", "Cash equivalent"


class AssetClass(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=16, choices=AssetClassKind.choices)
    display_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["display_order", "code"]
        verbose_name_plural = "asset classes"

    def __str__(self) -> str:
        return self.name


class Asset(models.Model):
    ticker = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=120)
    asset_class = models.ForeignKey(AssetClass, on_delete=models.PROTECT, related_name="assets")
    # The one fund per class that model portfolios hold.
    in_model_universe = models.BooleanField(default=False)
    # What the fund holds that investors may exclude (universe.ESG_FLAGS); illustrative, see universe.py.
    esg_flags = models.JSONField(default=list, blank=True)
    # Annual net expense ratio as a fraction (0.0003 = 0.03%); approximate, see universe.py.
    expense_ratio = models.DecimalField(max_digits=7, decimal_places=6, default=0)
    tax_treatment = models.CharField(max_length=24, blank=True)
    # The fund bought after a tax-loss sale of this one: same class, a different index.
    substitute = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The index the fund tracks. Funds tracking the same index are "substantially identical" for the
    # wash-sale rule (universe.TRACKED_INDEX); a fund with its own index is identical only to itself.
    tracks_index = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["ticker"]

    def __str__(self) -> str:
        return self.ticker


class Price(models.Model):
    """Daily close adjusted for splits and distributions (a total-return series)."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="prices")
    date = models.DateField()
    close = price_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "date"], name="one_price_per_asset_and_date"),
            models.CheckConstraint(condition=Q(close__gt=0), name="price_positive"),
        ]
        indexes = [models.Index(fields=["date"])]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.date} {self.close}"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class OptimizationRun(models.Model):
    """One estimation + optimization pass: everything needed to reproduce the model portfolios."""

    created_at = models.DateTimeField(auto_now_add=True)
    as_of = models.DateField()
    data_hash = models.CharField(max_length=64)
    parameters = models.JSONField(default=dict)
    # SHA-256 of the data hash and the canonical parameters: equal fingerprints, equal results.
    fingerprint = models.CharField(max_length=64)
    solver = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    timings = models.JSONField(default=dict)
    estimates = models.JSONField(default=dict)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(status="succeeded"),
                name="one_successful_run_per_snapshot_and_parameters",
            ),
        ]

    def __str__(self) -> str:
        return f"optimization {self.pk} as of {self.as_of} ({self.status})"


class ModelPortfolio(models.Model):
    run = models.ForeignKey(OptimizationRun, on_delete=models.PROTECT, related_name="model_portfolios")
    risk_level = models.PositiveSmallIntegerField()
    risk_aversion = models.FloatField()
    expected_return = models.DecimalField(max_digits=8, decimal_places=6)
    volatility = models.DecimalField(max_digits=8, decimal_places=6)
    # The optimizer's objective at the solution: mu'w - risk_aversion / 2 w'Sigma w (a float: analytics).
    objective = models.FloatField(default=0.0)
    solver_status = models.CharField(max_length=32)

    class Meta:
        ordering = ["run", "risk_level"]
        constraints = [
            models.UniqueConstraint(fields=["run", "risk_level"], name="one_model_portfolio_per_run_and_level"),
        ]

    def __str__(self) -> str:
        return f"level {self.risk_level} (run {self.run_id})"


class ModelPortfolioWeight(models.Model):
    portfolio = models.ForeignKey(ModelPortfolio, on_delete=models.CASCADE, related_name="weights")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    weight = weight_field()

    class Meta:
        ordering = ["-weight"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "asset"], name="one_weight_per_asset"),
            models.CheckConstraint(condition=Q(weight__gt=0, weight__lte=1), name="weight_in_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}: {self.weight}"


class AccountType(models.TextChoices):
    TAXABLE = "taxable", "Taxable brokerage"
    TRADITIONAL_IRA = "traditional_ira", "Traditional IRA"
    ROTH_IRA = "roth_ira", "Roth IRA"


TAX_ADVANTAGED_ACCOUNT_TYPES = frozenset({AccountType.TRADITIONAL_IRA, AccountType.ROTH_IRA})


class LotMethod(models.TextChoices):
    """How a sell chooses the lots it takes shares from (see docs/tax.md)."""

    # Losses first (largest loss per share first), then long-term gains, then short-term gains, each
    # from the highest cost down: the least tax now. The default for taxable accounts.
    TAX_MINIMIZING = "tax_min", "Tax-minimizing HIFO (losses, then long-term, then short-term gains)"
    HIFO = "hifo", "Highest cost first"
    FIFO = "fifo", "First in, first out"


# Accounts of the live book are the real ones; `simulate` keeps its synthetic investors' accounts in books
# of their own ("sim-..."), so a replay of history never touches (or is touched by) the live pipeline.
LIVE_BOOK = "live"


class Account(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField(max_length=80)
    account_type = models.CharField(max_length=16, choices=AccountType.choices, default=AccountType.TAXABLE)
    lot_method = models.CharField(max_length=8, choices=LotMethod.choices, default=LotMethod.TAX_MINIMIZING)
    book = models.CharField(max_length=32, default=LIVE_BOOK, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"

    @property
    def is_taxable(self) -> bool:
        return self.account_type == AccountType.TAXABLE


class PersonalTarget(models.Model):
    """A target portfolio for one optimization run, risk level and constraint signature: the model problem of
    the level under an investor's constraints (ESG exclusions, restricted list, account tax type, tax bracket);
    see services/targets.py. Every account with the same signature and level shares the row.

    ``weights`` maps ticker to a ``Decimal`` string at 1e-6 (only funds held); they sum to exactly one.
    ``binding`` lists the investor's constraints active at the target with what each costs: kind, name,
    label (plain words), assets, and the expected return given up and volatility added (in fractions).
    ``constraints`` describes the signature in plain values (exclusions and their reasons, account type...).
    """

    optimization_run = models.ForeignKey(OptimizationRun, on_delete=models.PROTECT, related_name="personal_targets")
    risk_level = models.PositiveSmallIntegerField()
    # SHA-256 of the constraint signature: accounts with equal hashes (and levels) share one solve.
    signature = models.CharField(max_length=64)
    constraints = models.JSONField(default=dict)
    weights = models.JSONField(default=dict)
    expected_return = models.DecimalField(max_digits=8, decimal_places=6)
    volatility = models.DecimalField(max_digits=8, decimal_places=6)
    binding = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["optimization_run", "signature", "risk_level"],
                name="one_personal_target_per_run_signature_level",
            ),
        ]

    def __str__(self) -> str:
        return f"personal target {self.signature[:8]} level {self.risk_level} (run {self.optimization_run_id})"


class DepositFrequency(models.TextChoices):
    WEEKLY = "weekly", "Every week"
    MONTHLY = "monthly", "Every month"


class RecurringDeposit(models.Model):
    """A standing instruction to deposit ``amount`` every week or month, from ``next_date`` (a market date).

    The pipeline makes each due deposit once: ``CashMovement (recurring_deposit, due_on)`` is unique.
    Due dates are counted from ``start_date`` (the first one): every 7 days, or on its day of the month,
    clamped to the end of shorter months (a schedule started on the 31st pays on Feb 28, then Mar 31).
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="recurring_deposits")
    amount = money_field()
    frequency = models.CharField(max_length=8, choices=DepositFrequency.choices)
    start_date = models.DateField()
    next_date = models.DateField()
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="recurring_deposit_positive")]

    def __str__(self) -> str:
        return f"{self.frequency} deposit of {self.amount} into account {self.account_id}"


class WithdrawalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for sales to settle"
    COMPLETED = "completed", "Paid out"
    CANCELLED = "cancelled", "Cancelled"


class WithdrawalRequest(models.Model):
    """An investor's request to take ``amount`` out of an account.

    Paid at once when the cash covers it; otherwise the pipeline proposes the sales that raise it (overweight
    classes first, losses harvested where possible) and the withdrawal is paid when they have filled.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="withdrawals")
    amount = money_field()
    status = models.CharField(max_length=16, choices=WithdrawalStatus.choices, default=WithdrawalStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_positive")]

    def __str__(self) -> str:
        return f"withdrawal of {self.amount} from account {self.account_id} ({self.status})"


class CashMovementKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"
    DIVIDEND = "dividend", "Dividend"
    FEE = "fee", "Trading cost"


class CashMovement(models.Model):
    """A signed entry of the cash ledger; the balance is their sum and never negative."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_movements")
    kind = models.CharField(max_length=16, choices=CashMovementKind.choices)
    amount = money_field()
    created_at = models.DateTimeField(auto_now_add=True)
    fill = models.ForeignKey("Fill", null=True, blank=True, on_delete=models.PROTECT, related_name="cash_movements")
    description = models.CharField(max_length=200, blank=True)
    # A deposit made by a standing instruction, for the date it was due (unique: made once).
    recurring_deposit = models.ForeignKey(
        RecurringDeposit, null=True, blank=True, on_delete=models.PROTECT, related_name="deposits"
    )
    due_on = models.DateField(null=True, blank=True)
    withdrawal = models.OneToOneField(
        WithdrawalRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="cash_movement"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind__in=["deposit", "sell", "dividend"], amount__gt=0)
                    | Q(kind__in=["withdrawal", "buy", "fee"], amount__lt=0)
                ),
                name="cash_movement_sign_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["recurring_deposit", "due_on"],
                condition=Q(recurring_deposit__isnull=False),
                name="one_deposit_per_schedule_and_due_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class Lot(models.Model):
    """A tax lot: shares bought together, with their cost; ``quantity`` is what remains.

    ``cost_per_share`` is the tax basis per share: the price paid plus costs, plus any loss disallowed by the
    wash-sale rule on a sale this purchase replaced (``wash_sale_adjustment``, in dollars for the whole lot).
    ``holding_start`` is when the holding period began: ``acquired_on``, or for a wash-sale replacement the
    start of the sold lot's holding period, which carries over.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    original_quantity = quantity_field()
    quantity = quantity_field()
    cost_per_share = price_field()
    acquired_on = models.DateField()
    holding_start = models.DateField(null=True, blank=True)
    wash_sale_adjustment = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    fill = models.ForeignKey("Fill", on_delete=models.PROTECT, related_name="lots")

    class Meta:
        ordering = ["acquired_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="lot_quantity_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__lte=models.F("original_quantity")), name="lot_quantity_at_most_original"
            ),
        ]
        indexes = [models.Index(fields=["account", "asset"])]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.quantity} of asset {self.asset_id} at {self.cost_per_share}"


class GainTerm(models.TextChoices):
    SHORT = "short", "Short-term (held one year or less)"
    LONG = "long", "Long-term (held more than one year)"


class RealizedGain(models.Model):
    """Shares of one lot sold by one fill, and the gain (negative: a loss) they realized.

    ``gain = proceeds - cost_basis``; ``wash_sale_disallowed`` (>= 0) is the part of a loss the wash-sale rule
    disallows, added to the basis of the replacement lot (``replacement_lot``).
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="realized_gains")
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="sales")
    fill = models.ForeignKey("Fill", on_delete=models.PROTECT, related_name="realized_gains")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    quantity = quantity_field()
    proceeds = money_field()
    cost_basis = money_field()
    gain = money_field()
    term = models.CharField(max_length=8, choices=GainTerm.choices)
    acquired_on = models.DateField()
    sold_on = models.DateField()
    harvest = models.BooleanField(default=False)  # sold by a tax-loss harvest
    wash_sale_disallowed = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    replacement_lot = models.ForeignKey(
        Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="wash_sale_sources"
    )

    class Meta:
        ordering = ["sold_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="realized_quantity_positive"),
            models.CheckConstraint(condition=Q(wash_sale_disallowed__gte=0), name="wash_sale_disallowed_not_negative"),
        ]
        indexes = [models.Index(fields=["account", "sold_on"])]

    def __str__(self) -> str:
        return f"{self.term}-term gain {self.gain} on lot {self.lot_id}"


class PipelineRun(models.Model):
    """One nightly pipeline pass for one market date and book (``live``, or a simulation's)."""

    book = models.CharField(max_length=32, default=LIVE_BOOK)
    market_date = models.DateField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    optimization_run = models.ForeignKey(OptimizationRun, null=True, blank=True, on_delete=models.PROTECT)
    counts = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    # The fan-out: how many chunks were dispatched and how many have finished (succeeded or failed). The chunk
    # that brings `chunks_finished` to `chunks_total` (a conditional update) runs the finishing stage.
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_finished = models.PositiveIntegerField(default=0)
    # Where the run is: prepare (validate, deposits, optimize, chunking), accounts (chunks on the workers),
    # finished. A run "running" in `accounts` may be resumed: its pending chunks are dispatched again.
    stage = models.CharField(max_length=16, default="prepare")
    # What the price validation found (stale or jumping prices, funds held without a price), in plain words.
    notes = models.JSONField(default=list)

    class Meta:
        ordering = ["-market_date", "book"]
        constraints = [
            models.UniqueConstraint(fields=["book", "market_date"], name="one_pipeline_run_per_book_and_date"),
        ]

    def __str__(self) -> str:
        return f"pipeline {self.book} {self.market_date} ({self.status})"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PipelineChunk(models.Model):
    """The accounts of one pipeline run (of its book) whose owners' ids lie in ``[first_owner_id, last_owner_id]``.

    A chunk holds whole investors (the wash-sale rule spans an investor's accounts). It is processed in one
    transaction that also marks it succeeded; a worker killed half-way leaves it pending, and the redelivered
    task does it again. ``failures`` lists accounts that could not be processed (id and why); the others are.
    """

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_owner_id = models.BigIntegerField()
    last_owner_id = models.BigIntegerField()
    account_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    failures = models.JSONField(default=list)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="one_chunk_per_run_and_index")]

    def __str__(self) -> str:
        return f"chunk {self.index} of pipeline {self.run_id} ({self.status})"


class RecommendationKind(models.TextChoices):
    REBALANCE = "rebalance", "Rebalance"
    INVEST_CASH = "invest_cash", "Invest new cash"
    TAX_LOSS_HARVEST = "tax_loss_harvest", "Harvest a tax loss"
    WITHDRAWAL = "withdrawal", "Raise cash for a withdrawal"
    SWITCH_BACK = "switch_back", "Switch back to the primary fund"


class RecommendationStatus(models.TextChoices):
    PENDING = "pending", "Awaiting advisor review"
    BLOCKED = "blocked", "Blocked by compliance"
    APPROVED = "approved", "Approved, executing"
    REJECTED = "rejected", "Rejected"
    EXECUTED = "executed", "Executed"
    EXPIRED = "expired", "Expired: prices moved on"


class Recommendation(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="recommendations")
    pipeline_run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="recommendations")
    model_portfolio = models.ForeignKey(ModelPortfolio, on_delete=models.PROTECT, related_name="+")
    personal_target = models.ForeignKey(
        PersonalTarget, null=True, blank=True, on_delete=models.PROTECT, related_name="recommendations"
    )
    withdrawal = models.ForeignKey(
        WithdrawalRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="recommendations"
    )
    kind = models.CharField(max_length=16, choices=RecommendationKind.choices)
    status = models.CharField(max_length=16, choices=RecommendationStatus.choices)
    risk_level = models.PositiveSmallIntegerField()
    market_date = models.DateField()
    triggers = models.JSONField(default=list)
    drift = models.JSONField(default=list)
    explanation = models.TextField()
    total_value = money_field()
    cash_before = money_field()
    estimated_cost = money_field()
    # The tax effect of the sells, estimated at the investor's rates: realized gains (negative: losses) by term,
    # losses harvested, and the tax due (negative: tax saved).
    realized_short_term = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    realized_long_term = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    harvested_loss = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    estimated_tax = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Re-running a pipeline (or delivering its task twice) cannot duplicate.
            models.UniqueConstraint(fields=["pipeline_run", "account"], name="one_recommendation_per_run_and_account"),
        ]
        indexes = [
            # The open ones are few among years of decided ones: the advisor queue, the pipeline's busy accounts,
            # the approvals to re-queue and the proposals to expire read only these.
            models.Index(
                fields=["status", "market_date"],
                name="recommendation_open",
                condition=models.Q(status__in=["pending", "blocked", "approved"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class TradeSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class TradePurpose(models.TextChoices):
    REBALANCE = "rebalance", "Rebalance towards the target"
    CASH = "cash", "Invest cash"
    HARVEST = "harvest", "Harvest a tax loss"
    SUBSTITUTE = "substitute", "Buy the substitute of a harvested fund"
    SWITCH_BACK = "switch_back", "Switch back to the primary fund"
    WITHDRAWAL = "withdrawal", "Raise cash for a withdrawal"


class Trade(models.Model):
    """A proposed trade of a recommendation, priced at the market date's close.

    A sell names the lots it plans to take shares from (``lots``: lot id, quantity, estimated gain and term);
    the broker sells those lots (specific identification) and falls back to the account's lot method.
    """

    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="trades")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=TradeSide.choices)
    purpose = models.CharField(max_length=16, choices=TradePurpose.choices, default=TradePurpose.REBALANCE)
    quantity = quantity_field()
    price = price_field()
    amount = money_field()
    cash_effect = money_field()
    lots = models.JSONField(default=list)
    estimated_gain = models.DecimalField(max_digits=18, decimal_places=2, default=0)

    class Meta:
        ordering = ["-side", "id"]  # sells first
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} of asset {self.asset_id}"


class OrderStatus(models.TextChoices):
    NEW = "new", "New"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"


class Order(models.Model):
    trade = models.OneToOneField(Trade, on_delete=models.PROTECT, related_name="order")
    recommendation = models.ForeignKey(Recommendation, on_delete=models.PROTECT, related_name="orders")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=TradeSide.choices)
    quantity = quantity_field()
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.NEW)
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"order {self.idempotency_key} ({self.status})"


class Fill(models.Model):
    """The paper broker's execution of an order: at most one per order."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="fill")
    quantity = quantity_field()
    price = price_field()
    gross_amount = money_field()
    cost = money_field()
    market_date = models.DateField()
    filled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive")]

    def __str__(self) -> str:
        return f"fill of order {self.order_id}: {self.quantity} @ {self.price}"

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


class Account(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField(max_length=80)
    account_type = models.CharField(max_length=16, choices=AccountType.choices, default=AccountType.TAXABLE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"


class PersonalTarget(models.Model):
    """An account's target for one optimization run: the model portfolio of its risk level under the
    investor's constraints (ESG exclusions, restricted list, account tax type); see services/targets.py.

    ``weights`` maps ticker to a ``Decimal`` string at 1e-6 (only funds held); they sum to exactly one.
    ``binding`` lists the investor's constraints active at the target with what each costs: kind, name,
    label (plain words), assets, and the expected return given up and volatility added (in fractions).
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="personal_targets")
    optimization_run = models.ForeignKey(OptimizationRun, on_delete=models.PROTECT, related_name="personal_targets")
    risk_level = models.PositiveSmallIntegerField()
    weights = models.JSONField(default=dict)
    expected_return = models.DecimalField(max_digits=8, decimal_places=6)
    volatility = models.DecimalField(max_digits=8, decimal_places=6)
    binding = models.JSONField(default=list)
    # SHA-256 of the constraint signature: accounts with equal hashes (and levels) share one solve.
    signature = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "optimization_run"], name="one_personal_target_per_account_and_run"
            ),
        ]

    def __str__(self) -> str:
        return f"personal target of account {self.account_id} (run {self.optimization_run_id})"


class CashMovementKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"
    FEE = "fee", "Trading cost"


class CashMovement(models.Model):
    """A signed entry of the cash ledger; the balance is their sum and never negative."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_movements")
    kind = models.CharField(max_length=16, choices=CashMovementKind.choices)
    amount = money_field()
    created_at = models.DateTimeField(auto_now_add=True)
    fill = models.ForeignKey("Fill", null=True, blank=True, on_delete=models.PROTECT, related_name="cash_movements")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind__in=["deposit", "sell"], amount__gt=0)
                    | Q(kind__in=["withdrawal", "buy", "fee"], amount__lt=0)
                ),
                name="cash_movement_sign_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class Lot(models.Model):
    """A tax lot: shares bought together, with their cost; ``quantity`` is what remains."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    original_quantity = quantity_field()
    quantity = quantity_field()
    cost_per_share = price_field()
    acquired_on = models.DateField()
    fill = models.ForeignKey("Fill", on_delete=models.PROTECT, related_name="lots")

    class Meta:
        ordering = ["acquired_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="lot_quantity_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__lte=models.F("original_quantity")), name="lot_quantity_at_most_original"
            ),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.quantity} of asset {self.asset_id} at {self.cost_per_share}"


class PipelineRun(models.Model):
    """One nightly pipeline pass for one market date."""

    market_date = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    optimization_run = models.ForeignKey(OptimizationRun, null=True, blank=True, on_delete=models.PROTECT)
    counts = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-market_date"]

    def __str__(self) -> str:
        return f"pipeline {self.market_date} ({self.status})"


class RecommendationKind(models.TextChoices):
    REBALANCE = "rebalance", "Rebalance"
    INVEST_CASH = "invest_cash", "Invest new cash"


class RecommendationStatus(models.TextChoices):
    PENDING = "pending", "Awaiting advisor review"
    BLOCKED = "blocked", "Blocked by compliance"
    APPROVED = "approved", "Approved, executing"
    REJECTED = "rejected", "Rejected"
    EXECUTED = "executed", "Executed"


class Recommendation(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="recommendations")
    pipeline_run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="recommendations")
    model_portfolio = models.ForeignKey(ModelPortfolio, on_delete=models.PROTECT, related_name="+")
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

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class TradeSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class Trade(models.Model):
    """A proposed trade of a recommendation, priced at the market date's close."""

    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="trades")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=TradeSide.choices)
    quantity = quantity_field()
    price = price_field()
    amount = money_field()
    cash_effect = money_field()

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

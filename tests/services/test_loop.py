"""The loop through services on the database: pipeline -> compliance -> approval -> paper broker."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Sum

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from compliance.audit import audit_verify
from compliance.models import AuditEvent, Finding
from portfolios.models import (
    CashMovement,
    Fill,
    Lot,
    ModelPortfolio,
    OptimizationRun,
    Order,
    PipelineRun,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    RunStatus,
)
from portfolios.selectors import account_snapshot, market_date_latest
from portfolios.services.pipeline import pipeline_run
from portfolios.services.recommendations import (
    order_fill,
    recommendation_approve,
    recommendation_execute,
    recommendation_reject,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():  # type: ignore[no-untyped-def]
    """Run the execution task inline when the approval commits (the worker is tested in tests/integration)."""
    from advisor.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def cash(account_id: int) -> Decimal:
    # Summed in Python: SQLite sums NUMERIC through floats (the product's selectors round back to cents).
    return sum(CashMovement.objects.filter(account_id=account_id).values_list("amount", flat=True), Decimal(0))


def test_pipeline_builds_model_portfolios_and_proposes_investing_new_cash(funded_alice) -> None:  # type: ignore[no-untyped-def]
    # when
    run = pipeline_run()
    # then
    assert run.status == RunStatus.SUCCEEDED and run.market_date == market_date_latest()
    assert run.counts == {
        "accounts_seen": 1,
        "chunks": 1,
        "recommendations": 1,
        "recommendations_invest_cash": 1,
        "trigger_cash": 1,
        "trigger_drift": 1,
        "failures": 0,
    }
    optimization = OptimizationRun.objects.get()
    assert optimization.status == RunStatus.SUCCEEDED and len(optimization.data_hash) == 64
    assert ModelPortfolio.objects.filter(run=optimization).count() == 10
    rec = Recommendation.objects.get()
    assert rec.kind == RecommendationKind.INVEST_CASH and rec.status == RecommendationStatus.PENDING
    assert rec.risk_level == funded_alice.risk_profiles.get().risk_level
    assert rec.triggers[0]["type"] == "cash" and rec.cash_before == Decimal("100000.00")
    assert all(t.side == "buy" for t in rec.trades.all())
    assert cash(rec.account_id) + sum(t.cash_effect for t in rec.trades.all()) >= 0
    assert "uninvested cash" in rec.explanation
    findings = {f.rule_code: f.severity for f in Finding.objects.filter(recommendation=rec)}
    assert findings == {
        "no_short_sale_or_negative_cash": "pass",
        "single_asset_concentration": "pass",
        "target_volatility_band": "pass",
        "minimum_trade_size": "pass",
        "restricted_list": "pass",
        "wash_sale": "pass",
    }
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions[-5:] == [
        "optimization.succeeded",
        "personal_targets.built",
        "recommendation.created",
        "recommendation.checked",
        "pipeline.finished",
    ]


def test_rerunning_a_pipeline_creates_nothing_new(funded_alice) -> None:  # type: ignore[no-untyped-def]
    first = pipeline_run()
    events = AuditEvent.objects.count()
    # when: the same date again, finished...
    assert pipeline_run(market_date=first.market_date).pk == first.pk
    # ...and a retried run that had failed part-way
    PipelineRun.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    again = pipeline_run(market_date=first.market_date)
    # then
    assert again.pk == first.pk and again.status == RunStatus.SUCCEEDED
    assert again.counts["already_recommended"] == 1
    assert Recommendation.objects.count() == 1 and OptimizationRun.objects.count() == 1
    assert AuditEvent.objects.count() == events + 1  # only the second pipeline.finished


def test_one_recommendation_per_run_and_account_is_a_database_rule(funded_alice) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Recommendation.objects.create(
            account=rec.account,
            pipeline_run=rec.pipeline_run,
            model_portfolio=rec.model_portfolio,
            kind=rec.kind,
            status=rec.status,
            risk_level=rec.risk_level,
            market_date=rec.market_date,
            explanation="duplicate",
            total_value=rec.total_value,
            cash_before=rec.cash_before,
            estimated_cost=rec.estimated_cost,
        )


def test_open_recommendation_blocks_a_new_one_the_next_day(funded_alice) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    pipeline_run()
    next_run = pipeline_run(market_date=market_date_latest() - timedelta(days=1))
    assert next_run.counts["awaiting_decision"] == 1
    assert Recommendation.objects.count() == 1


def test_investor_without_profile_gets_no_recommendation(alice, market_data) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.accounts import account_deposit, account_open

    account_deposit(account=account_open(owner=alice), amount="5000", actor=alice)
    run = pipeline_run()
    assert run.counts["no_profile"] == 1 and not Recommendation.objects.exists()


def test_assigned_advisor_approves_and_the_broker_fills_once(
    funded_alice, carol, eager_celery, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        recommendation_approve(recommendation_id=rec.pk, advisor=carol, comment="Looks right")
    # then
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.EXECUTED and rec.decided_by == carol
    orders = list(Order.objects.filter(recommendation=rec))
    assert orders and all(o.status == "filled" for o in orders)
    assert Fill.objects.filter(order__recommendation=rec).count() == len(orders)
    assert cash(rec.account_id) >= 0
    lots = Lot.objects.filter(account=rec.account)
    assert {lot.asset_id for lot in lots} == {t.asset_id for t in rec.trades.all()}
    snapshot = account_snapshot(rec.account)
    assert snapshot.max_drift < Decimal("0.01")
    # Total value fell only by the trading costs.
    costs = Fill.objects.filter(order__recommendation=rec).aggregate(total=Sum("cost"))["total"]
    assert abs(snapshot.total - (Decimal("100000.00") - costs)) <= Decimal("0.01") * len(orders)
    # Delivered again: nothing changes.
    fills, movements = Fill.objects.count(), CashMovement.objects.count()
    recommendation_execute(recommendation_id=rec.pk)
    for order in orders:
        assert order_fill(order_id=order.pk) is None
    assert (Fill.objects.count(), CashMovement.objects.count()) == (fills, movements)
    actions = list(AuditEvent.objects.filter(object_id__in=[str(o.pk) for o in orders], action="order.filled"))
    assert len(actions) == len(orders)
    assert audit_verify()[1] is None


def test_a_second_rebalance_sells_before_it_buys(
    funded_alice, carol, eager_celery, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from profiling.services import profile_submit

    pipeline_run()
    first = Recommendation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        recommendation_approve(recommendation_id=first.pk, advisor=carol)
    # Alice becomes far more cautious: her target changes and the account drifts beyond the band.
    cautious = dict(funded_alice.risk_profiles.get().answers.items())
    cautious.update(
        fall_10="sell_all",
        fall_20="sell_all",
        fall_35="sell_all",
        objective="preserve",
        trade_off="sure",
        horizon="lt3",
    )
    profile_submit(investor=funded_alice, answers=cautious)
    from datetime import timedelta

    run = pipeline_run(market_date=market_date_latest() - timedelta(days=3))
    second = Recommendation.objects.exclude(pk=first.pk).get()
    assert run.counts["recommendations_rebalance"] == 1
    assert second.kind == RecommendationKind.REBALANCE and any(t["type"] == "drift" for t in second.triggers)
    sides = [t.side for t in second.trades.all()]
    assert "sell" in sides and sides == sorted(sides, key=lambda s: s != "sell")
    with django_capture_on_commit_callbacks(execute=True):
        recommendation_approve(recommendation_id=second.pk, advisor=carol)
    second.refresh_from_db()
    assert second.status == RecommendationStatus.EXECUTED
    assert cash(second.account_id) >= 0
    assert all(lot.quantity >= 0 for lot in Lot.objects.all())


def test_only_the_assigned_advisor_decides(funded_alice, dave, erin) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    for outsider in (dave, erin, funded_alice):
        with pytest.raises(NotAllowedError):
            recommendation_approve(recommendation_id=rec.pk, advisor=outsider)
        with pytest.raises(NotAllowedError):
            recommendation_reject(recommendation_id=rec.pk, advisor=outsider, comment="no")
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.PENDING and not Order.objects.exists()


def test_reject_needs_a_reason_and_is_final(funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    events = AuditEvent.objects.count()
    with pytest.raises(InvalidInputError) as info:
        recommendation_reject(recommendation_id=rec.pk, advisor=carol, comment="  ")
    assert info.value.fields == {"comment": "Say why the recommendation is rejected."}
    assert AuditEvent.objects.count() == events
    recommendation_reject(recommendation_id=rec.pk, advisor=carol, comment="Client asked to wait")
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.REJECTED and rec.decision_comment == "Client asked to wait"
    with pytest.raises(InvalidStateError):
        recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    assert not Order.objects.exists()
    last = AuditEvent.objects.last()
    assert last.action == "recommendation.rejected" and last.actor == carol and last.payload["old_status"] == "pending"


def test_blocking_finding_prevents_approval(funded_alice, carol, settings) -> None:  # type: ignore[no-untyped-def]
    # A concentration limit no diversified target can meet makes compliance block.
    settings.ADVISOR = {**settings.ADVISOR, "MAX_POSITION_WEIGHT": Decimal("0.05")}
    pipeline_run()
    rec = Recommendation.objects.get()
    assert rec.status == RecommendationStatus.BLOCKED
    assert Finding.objects.get(recommendation=rec, rule_code="single_asset_concentration").severity == "block"
    with pytest.raises(InvalidStateError, match="Compliance blocked"):
        recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    assert not Order.objects.exists()
    recommendation_reject(recommendation_id=rec.pk, advisor=carol, comment="Blocked by compliance")


def test_rerun_picks_up_accounts_funded_after_the_run(funded_alice, bob) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.accounts import account_deposit, account_open
    from profiling.services import profile_submit
    from tests.factories import BALANCED_ANSWERS

    first = pipeline_run()
    profile_submit(investor=bob, answers=BALANCED_ANSWERS)
    account_deposit(account=account_open(owner=bob), amount="20000", actor=bob)
    assert pipeline_run().pk == first.pk and Recommendation.objects.count() == 1  # a finished run is left alone
    again = pipeline_run(rerun=True)
    assert again.pk == first.pk and again.counts["already_recommended"] == 1
    assert Recommendation.objects.filter(account__owner=bob).count() == 1
    assert Recommendation.objects.count() == 2


def test_blocked_recommendation_waits_for_the_advisor(funded_alice, settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    settings.ADVISOR = {**settings.ADVISOR, "MAX_POSITION_WEIGHT": Decimal("0.05")}
    pipeline_run()
    next_day = pipeline_run(market_date=market_date_latest() - timedelta(days=1))
    assert next_day.counts["awaiting_decision"] == 1 and Recommendation.objects.count() == 1


def test_pipeline_requeues_approved_recommendations_whose_task_was_lost(
    funded_alice, carol, eager_celery, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    pipeline_run()
    rec = Recommendation.objects.get()
    recommendation_approve(recommendation_id=rec.pk, advisor=carol)  # its on-commit dispatch is lost (never run)
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.APPROVED
    Recommendation.objects.filter(pk=rec.pk).update(decided_at=rec.decided_at - timedelta(hours=1))  # long ago
    with django_capture_on_commit_callbacks(execute=True):
        run = pipeline_run(market_date=market_date_latest() - timedelta(days=1))
    assert run.counts["executions_requeued"] == 1
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.EXECUTED

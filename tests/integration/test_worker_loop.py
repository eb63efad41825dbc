"""The whole loop on Postgres with a real Celery worker consuming from Redis.

Sign-up -> questionnaire -> advisor assigned -> deposit -> nightly pipeline (worker) ->
compliance + audit -> advisor approval -> execution (worker) -> dashboard -> verified audit chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from advisor.models import User
from compliance.models import AuditEvent
from portfolios.models import CashMovement, Fill, Order, PipelineRun, Recommendation, RecommendationStatus, RunStatus
from tests.conftest import IN_CI, on_postgres, redis_available
from tests.factories import BALANCED_ANSWERS, PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(condition: Callable[[], object], *, timeout: float = 90, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def worker(market_data) -> Iterator[object]:  # type: ignore[no-untyped-def]
    if not (on_postgres() and redis_available()):
        message = "integration tests need Postgres (DATABASE_URL) and Redis (CELERY_BROKER_URL)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from celery.contrib.testing.worker import start_worker

    import portfolios.tasks  # noqa: F401 - registers the tasks with the app
    from advisor.celery import app

    app.conf.task_always_eager = False
    app.control.purge()  # nothing left over from an earlier, interrupted run
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=60, loglevel="WARNING"
    ):
        yield app


SENTINEL_DATE = "1990-01-02"  # before any shipped price: the run fails at once and changes nothing else


def drain(app: object) -> None:
    """The solo worker runs tasks in order: once the sentinel pipeline run has ended, everything before it ran."""
    from portfolios.tasks import nightly_pipeline

    nightly_pipeline.delay(SENTINEL_DATE)
    wait_for(
        lambda: PipelineRun.objects.filter(market_date=SENTINEL_DATE, status=RunStatus.FAILED).exists(),
        what="the sentinel task",
    )


def test_full_loop_from_sign_up_to_a_filled_order(worker, carol, erin) -> None:  # type: ignore[no-untyped-def]
    from portfolios.tasks import execute_recommendation, nightly_pipeline

    investor, advisor, admin = Client(), Client(), Client()
    # An investor signs up and answers the questionnaire.
    response = investor.post(
        reverse("signup"), {"email": "zoe@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    zoe = User.objects.get(email="zoe@example.com")
    assert investor.post(reverse("questionnaire"), BALANCED_ANSWERS).status_code == 302
    result = investor.get(reverse("profile-result")).content.decode()
    assert "Your risk profile" in result
    # An admin assigns Carol; Zoe deposits cash.
    admin.force_login(erin)
    admin.post(reverse("staff-assign-advisor", kwargs={"pk": zoe.pk}), {"advisor": carol.pk})
    account = zoe.accounts.get()
    assert investor.post(reverse("deposit", kwargs={"pk": account.pk}), {"amount": "50000.00"}).status_code == 302

    # The nightly pipeline runs on the worker.
    nightly_pipeline.delay()
    run = wait_for(
        lambda: PipelineRun.objects.filter(status=RunStatus.SUCCEEDED).first(),
        what="the pipeline run",
    )
    rec = Recommendation.objects.get(account=account)
    assert rec.status == RecommendationStatus.PENDING and rec.pipeline_run == run
    assert rec.findings.count() == 6 and not rec.findings.filter(severity="block").exists()

    # Carol approves; the worker fills the orders.
    advisor.force_login(carol)
    page = advisor.get(reverse("recommendation", kwargs={"pk": rec.pk})).content.decode()
    assert "Approve" in page and "target_volatility_band" in page
    advisor.post(reverse("recommendation-approve", kwargs={"pk": rec.pk}), {"comment": "Invest as proposed"})
    wait_for(
        lambda: Recommendation.objects.filter(pk=rec.pk, status=RecommendationStatus.EXECUTED).exists(),
        what="execution",
    )
    orders = Order.objects.filter(recommendation=rec)
    assert orders.count() == rec.trades.count() and all(o.status == "filled" for o in orders)
    balance = CashMovement.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    assert Decimal("0") <= balance < Decimal("100")

    # The dashboard shows the holdings; the API agrees.
    dashboard = investor.get(reverse("dashboard")).content.decode()
    snapshot = investor.get(f"/api/accounts/{account.pk}/").json()
    held = [p["ticker"] for p in snapshot["positions"] if Decimal(p["quantity"]) > 0]
    assert held and all(ticker in dashboard for ticker in held)
    assert Decimal(snapshot["max_drift"]) < Decimal("0.01")
    assert "Executed" in dashboard

    # Re-running the same pipeline and re-delivering the execution change nothing.
    fills, recommendations = Fill.objects.count(), Recommendation.objects.count()
    nightly_pipeline.delay(run.market_date.isoformat())
    execute_recommendation.delay(rec.pk)
    execute_recommendation.delay(rec.pk)
    drain(worker)
    assert (Fill.objects.count(), Recommendation.objects.filter(account=account).count()) == (fills, 1)
    assert Recommendation.objects.count() == recommendations

    # Every decision is in the audit chain, and the chain verifies.
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "user.signed_up",
        "account.opened",
        "profile.scored",
        "investor.advisor_assigned",
        "account.deposit",
        "optimization.succeeded",
        "recommendation.created",
        "recommendation.checked",
        "pipeline.finished",
        "recommendation.approved",
        "order.filled",
        "recommendation.executed",
    } <= actions
    call_command("verify_audit")


def test_execution_racing_with_itself_fills_each_order_once(worker, funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.pipeline import pipeline_run
    from portfolios.services.recommendations import recommendation_approve, recommendation_execute

    pipeline_run()
    rec = Recommendation.objects.get()
    # Approval queues the task on the worker; this process executes the same recommendation at once.
    recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    recommendation_execute(recommendation_id=rec.pk)
    drain(worker)
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.EXECUTED
    orders = Order.objects.filter(recommendation=rec)
    assert Fill.objects.filter(order__in=orders).count() == orders.count()
    assert AuditEvent.objects.filter(action="order.filled").count() == orders.count()
    assert AuditEvent.objects.filter(action="recommendation.executed").count() == 1
    call_command("verify_audit")

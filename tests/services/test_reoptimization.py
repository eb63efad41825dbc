"""Re-optimization on request: reuse an unchanged run, build the live accounts' targets, audit the request."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from advisor.errors import NotAllowedError
from compliance.models import AuditEvent
from compliance.parameters import parameter_change_approve, parameter_change_propose, parameter_set_current
from portfolios.models import Account, OptimizationRun, PersonalTarget
from portfolios.selectors import market_date_latest
from portfolios.services.accounts import account_open
from portfolios.services.optimization import model_portfolios_build
from portfolios.services.reoptimization import optimization_rerun, optimization_rerun_queue
from portfolios.services.targets import personal_target_lookup
from portfolios.tasks import reoptimize
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run queued tasks inline when the transaction commits (the worker is tested in tests/integration)."""
    from advisor.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def requested_events() -> list[dict[str, object]]:
    return [e.payload for e in AuditEvent.objects.filter(action="optimization.requested").order_by("id")]


def test_a_rerun_builds_the_run_and_the_live_accounts_targets(funded_alice, bob, erin) -> None:  # type: ignore[no-untyped-def]
    # given Bob (no risk profile) and an account of Alice's in a simulation book: neither gets a target
    account_open(owner=bob)
    Account.objects.create(owner=funded_alice, name="Replay", book="sim-2020")
    # when
    result = optimization_rerun(actor=erin)
    # then
    run = result.run
    assert (result.reused, result.accounts, result.targets, result.failures) == (False, 1, 1, [])
    assert run.status == "succeeded" and run.as_of == market_date_latest()
    assert run.model_portfolios.count() == 10
    [target] = PersonalTarget.objects.filter(optimization_run=run)
    live = Account.objects.get(owner=funded_alice, book="live")
    level = funded_alice.risk_profiles.order_by("-version").first().effective_risk_level
    assert personal_target_lookup(account=live, risk_level=level) == target
    event = AuditEvent.objects.filter(action="optimization.requested").get()
    assert (event.actor_id, event.object_type, event.object_id) == (erin.pk, "portfolios.optimizationrun", str(run.pk))
    assert event.payload == {
        "as_of": run.as_of.isoformat(),
        "reused": False,
        "policy_version": 1,  # the defaults, stored as version 1 before their first use
        "accounts": 1,
        "targets": 1,
        "failures": [],
        "failure_count": 0,
        "levels_outside_volatility_bands": {},
    }
    assert AuditEvent.objects.filter(action="optimization.succeeded", actor=erin).count() == 1


def test_a_second_rerun_on_the_same_prices_and_parameters_reuses_the_run(funded_alice, erin) -> None:  # type: ignore[no-untyped-def]
    first = optimization_rerun(actor=erin)
    targets = list(PersonalTarget.objects.values_list("pk", flat=True))
    # when
    second = optimization_rerun(actor=erin)
    # then
    assert second.reused is True and second.run.pk == first.run.pk
    assert (second.accounts, second.targets) == (1, 1)
    assert list(PersonalTarget.objects.values_list("pk", flat=True)) == targets
    assert OptimizationRun.objects.count() == 1
    assert [p["reused"] for p in requested_events()] == [False, True]


def test_a_run_built_by_the_pipeline_is_reused(funded_alice, erin) -> None:  # type: ignore[no-untyped-def]
    run = model_portfolios_build(as_of=market_date_latest())
    result = optimization_rerun(actor=erin)
    assert result.reused is True and result.run.pk == run.pk and result.targets == 1


def test_only_admins_may_rerun_or_queue(funded_alice, carol, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    for user in (funded_alice, carol):
        with django_capture_on_commit_callbacks() as queued:
            with pytest.raises(NotAllowedError):
                optimization_rerun_queue(actor=user)
            with pytest.raises(NotAllowedError):
                optimization_rerun(actor=user)
        assert queued == []
    assert OptimizationRun.objects.count() == 0 and requested_events() == []


def test_queueing_runs_the_task_after_commit(
    funded_alice, erin, eager_celery, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True) as queued:
        market_date, version = optimization_rerun_queue(actor=erin)
        assert OptimizationRun.objects.count() == 0  # nothing runs before the commit
    assert (market_date, version, len(queued)) == (market_date_latest(), 0, 1)
    run = OptimizationRun.objects.get()
    assert requested_events()[0]["reused"] is False and PersonalTarget.objects.filter(optimization_run=run).exists()


def test_the_task_reports_what_it_did_and_is_safe_to_deliver_twice(funded_alice, erin) -> None:  # type: ignore[no-untyped-def]
    first = reoptimize(erin.pk)
    second = reoptimize(erin.pk)
    run = OptimizationRun.objects.get()
    assert first == {
        "optimization_run": run.pk,
        "reused": False,
        "accounts": 1,
        "targets": 1,
        "failures": 0,
        "levels_outside_volatility_bands": [],
    }
    assert second == first | {"reused": True}


def test_the_task_records_a_refusal_instead_of_retrying(funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    assert reoptimize(carol.pk) == {"refused": "Only an admin can re-optimize the model portfolios."}
    assert OptimizationRun.objects.count() == 0


def test_approving_optimization_parameters_reoptimizes_under_the_new_version(  # type: ignore[no-untyped-def]
    funded_alice, erin, eager_celery, django_capture_on_commit_callbacks
) -> None:
    # given the targets under the defaults
    before = optimization_rerun(actor=erin).run
    frank = AdminFactory(email="frank@example.com")
    values = parameter_set_current("optimization").values | {"max_asset_weight": 0.3}
    change = parameter_change_propose(actor=frank, name="optimization", values=values, reason="Smaller positions")
    # when Erin approves and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        parameter_change_approve(actor=erin, change_id=change.pk, comment="Yes")
    # then a new run under version 2 (version 1 stored the defaults before the first rerun), and Alice's target
    after = OptimizationRun.objects.exclude(pk=before.pk).get()
    assert after.parameters["policy_version"] == 2 and after.parameters["max_asset_weight"] == 0.3
    assert max(w.weight for p in after.model_portfolios.all() for w in p.weights.all()) == Decimal("0.3")
    assert PersonalTarget.objects.filter(optimization_run=after).count() == 1
    event = AuditEvent.objects.filter(action="optimization.requested").last()
    assert (event.actor_id, event.payload["reused"], event.payload["policy_version"]) == (erin.pk, False, 2)


def test_levels_outside_the_compliance_bands_are_reported(funded_alice, erin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # given a band for level 10 that no model portfolio of that level fits in
    from portfolios.services import reoptimization

    monkeypatch.setitem(reoptimization.VOLATILITY_BANDS, 10, (0.0, 0.01))
    # when
    result = optimization_rerun(actor=erin)
    # then
    volatility = str(result.run.model_portfolios.get(risk_level=10).volatility)
    assert result.outside_bands == {10: volatility}
    assert requested_events()[0]["levels_outside_volatility_bands"] == {"10": volatility}

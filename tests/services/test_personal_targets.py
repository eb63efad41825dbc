"""Personal targets in the pipeline: the model portfolio under each investor's ESG exclusions."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from advisor.services import investor_assign_advisor
from portfolios.models import Asset, PersonalTarget, Recommendation, RunStatus, TradeSide
from portfolios.personal import Constraints, diagnose, exclusions_for
from portfolios.selectors import account_snapshot, market_date_latest
from portfolios.services.accounts import account_deposit, account_open
from portfolios.services.optimization import model_portfolios_build
from portfolios.services.pipeline import pipeline_run
from portfolios.services.targets import personal_targets_build
from portfolios.universe import ESG_FLAGS, ESG_FLAGS_BY_TICKER
from profiling.services import profile_submit
from profiling.services.goals import preferences_update
from tests.factories import BALANCED_ANSWERS, InvestorFactory

pytestmark = pytest.mark.django_db


def funded_investor(email: str, advisor, admin):  # type: ignore[no-untyped-def]
    investor = InvestorFactory(email=email)
    investor_assign_advisor(investor=investor, advisor=advisor, actor=admin)
    profile_submit(investor=investor, answers=BALANCED_ANSWERS)
    account = account_open(owner=investor)
    account_deposit(account=account, amount=Decimal("100000.00"), actor=investor)
    return investor, account


def exclude(investor, *screens: str) -> None:  # type: ignore[no-untyped-def]
    preferences_update(investor=investor, data={"esg_exclusions": list(screens), "marginal_tax_rate": "0.24"})


def model_weights(recommendation: Recommendation) -> dict[str, str]:
    return {w.asset.ticker: str(w.weight) for w in recommendation.model_portfolio.weights.select_related("asset")}


def test_without_preferences_the_target_is_the_model_portfolio_exactly(funded_alice) -> None:  # type: ignore[no-untyped-def]
    # when
    run = pipeline_run()
    # then
    assert run.status == RunStatus.SUCCEEDED
    rec = Recommendation.objects.get()
    target = PersonalTarget.objects.get()
    assert rec.personal_target_id == target.pk and target.optimization_run_id == run.optimization_run_id
    assert target.risk_level == rec.risk_level == rec.model_portfolio.risk_level
    assert target.weights == model_weights(rec)
    assert sum(Decimal(w) for w in target.weights.values()) == Decimal(1)
    assert (target.expected_return, target.volatility) == (
        rec.model_portfolio.expected_return,
        rec.model_portfolio.volatility,
    )
    assert target.binding == []
    assert "exclusion" not in rec.explanation


def test_an_esg_exclusion_shapes_the_target_and_is_explained_with_its_cost(funded_alice) -> None:  # type: ignore[no-untyped-def]
    # given
    exclude(funded_alice, "fossil_fuels")
    # when
    run = pipeline_run()
    # then
    assert run.status == RunStatus.SUCCEEDED
    rec = Recommendation.objects.get()
    flagged = {t for t, flags in ESG_FLAGS_BY_TICKER.items() if "fossil_fuels" in flags}
    assert flagged & set(model_weights(rec))  # the model portfolio holds some: the screen matters
    bought = {t.asset.ticker for t in rec.trades.select_related("asset") if t.side == TradeSide.BUY}
    assert bought and not bought & flagged
    target = rec.personal_target
    assert target is not None and not set(target.weights) & flagged
    assert sum(Decimal(w) for w in target.weights.values()) == Decimal(1)
    [binding] = target.binding
    assert binding["kind"] == "exclusion"
    assert binding["label"] == f"Your exclusion of {ESG_FLAGS['fossil_fuels'].lower()}"
    assert "VTI" in binding["assets"] and binding["expected_return_cost"] > 0
    assert target.expected_return < rec.model_portfolio.expected_return
    assert f"Your exclusion of fossil fuel producers removes {', '.join(binding['assets'][:-1])}" in rec.explanation
    cost = f"costing about {binding['expected_return_cost'] * 100:.1f} percentage points of expected return a year"
    assert cost in rec.explanation
    # the compliance check saw the personal target's volatility
    band = rec.findings.get(rule_code="target_volatility_band")
    assert band.details["volatility"] == round(float(target.volatility), 6)
    # the dashboard measures drift against the personal target
    assert {row.ticker for row in account_snapshot(rec.account).positions if row.target_weight > 0} == set(
        target.weights
    )


def test_rerunning_the_pipeline_creates_no_new_targets(funded_alice) -> None:  # type: ignore[no-untyped-def]
    exclude(funded_alice, "weapons")
    first = pipeline_run()
    stored = list(PersonalTarget.objects.values_list("pk", "weights"))
    # when
    again = pipeline_run(market_date=first.market_date, rerun=True)
    # then
    assert again.pk == first.pk and again.status == RunStatus.SUCCEEDED
    assert list(PersonalTarget.objects.values_list("pk", "weights")) == stored
    assert Recommendation.objects.count() == 1
    # when: new preferences before another re-run on the same optimization run
    exclude(funded_alice)
    pipeline_run(market_date=first.market_date, rerun=True)
    # then: the account's new signature gets its own target for the run; the first one is kept unchanged
    assert list(PersonalTarget.objects.filter(pk=stored[0][0]).values_list("pk", "weights")) == stored
    target = PersonalTarget.objects.exclude(pk=stored[0][0]).get()
    assert target.binding == [] and target.weights != stored[0][1]


def test_accounts_with_the_same_constraints_share_one_solve(funded_alice, carol, erin) -> None:  # type: ignore[no-untyped-def]
    # given: Alice and Bob exclude fossil fuels, Frank states no preferences
    bob, bob_account = funded_investor("bob@example.com", carol, erin)
    _frank, frank_account = funded_investor("frank@example.com", carol, erin)
    exclude(funded_alice, "fossil_fuels")
    exclude(bob, "fossil_fuels")
    alice_account = funded_alice.accounts.get()
    optimization = model_portfolios_build(as_of=market_date_latest())
    level = funded_alice.risk_profiles.get().effective_risk_level
    accounts = [(alice_account, level), (bob_account, level), (frank_account, level)]
    # when
    targets = personal_targets_build(optimization_run=optimization, accounts_with_levels=accounts)
    # then
    assert set(targets) == {alice_account.pk, bob_account.pk, frank_account.pk}
    assert len({t.signature for t in targets.values()}) == 2
    assert targets[alice_account.pk].signature == targets[bob_account.pk].signature
    assert targets[alice_account.pk].weights == targets[bob_account.pk].weights
    assert targets[alice_account.pk].binding == targets[bob_account.pk].binding != []
    assert targets[frank_account.pk].binding == []
    # and building again stores nothing new
    again = personal_targets_build(optimization_run=optimization, accounts_with_levels=accounts)
    assert {k: t.pk for k, t in again.items()} == {k: t.pk for k, t in targets.items()}
    assert PersonalTarget.objects.count() == 2  # one row per signature and level, shared
    assert targets[alice_account.pk].pk == targets[bob_account.pk].pk


def test_impossible_constraints_fail_that_account_only(funded_alice, carol, erin, settings) -> None:  # type: ignore[no-untyped-def]
    # given: at most 10% per fund, and Bob screens out every flag: 9 of the 16 model funds remain, 90% at most
    settings.ADVISOR = {**settings.ADVISOR, "MAX_ASSET_WEIGHT": 0.1}
    bob, bob_account = funded_investor("bob@example.com", carol, erin)
    exclude(bob, *ESG_FLAGS)
    optimization = model_portfolios_build(as_of=market_date_latest())
    universe = optimization.parameters["universe"]
    class_of = dict(Asset.objects.filter(ticker__in=universe).values_list("ticker", "asset_class__code"))
    screened = Constraints(
        upper=np.full(len(universe), optimization.parameters["max_asset_weight"]),
        exclusions=exclusions_for(universe, esg_exclusions=ESG_FLAGS),
    )
    assert diagnose(screened, universe, [class_of[t] for t in universe]) == [
        "per-asset maxima sum to 0.9 < 1 after excluding DBC, HYG, IJR, LQD, VEA, VTI, VWO"
    ]
    # when
    run = pipeline_run()
    # then: Bob's account is a named failure, Alice still gets her recommendation
    assert run.status == RunStatus.FAILED and run.counts["failures"] == 1
    assert f"account {bob_account.pk} (Taxable account): no personal target" in run.error
    assert "per-asset maxima sum to 0.9 < 1" in run.error
    assert list(Recommendation.objects.values_list("account__owner", flat=True)) == [funded_alice.pk]
    assert PersonalTarget.objects.count() == 1  # Alice's only
    assert Recommendation.objects.get().personal_target == PersonalTarget.objects.get()

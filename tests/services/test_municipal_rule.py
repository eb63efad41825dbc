"""The municipal-bond rule of personal targets, through ``personal_targets_build``.

Municipal bonds pay less than taxable bonds and make up for it with a tax exemption: worth having in a taxable
account at a high enough marginal rate (the policy's ``municipal_min_tax_rate``, 24% by default), wasted in a
traditional or Roth IRA, and worth less than its cost below that rate.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from advisor.services import investor_assign_advisor
from portfolios.models import Account, AccountType, ModelPortfolio, PersonalTarget
from portfolios.selectors import market_date_latest
from portfolios.services.optimization import model_portfolios_build
from portfolios.services.targets import personal_targets_build
from profiling.services.goals import preferences_update
from tests.factories import InvestorFactory

pytestmark = pytest.mark.django_db

THRESHOLD = Decimal("0.24")  # OptimizationPolicy.municipal_min_tax_rate


def investor(email: str, rate: str | None, advisor, admin):  # type: ignore[no-untyped-def]
    person = InvestorFactory(email=email)
    investor_assign_advisor(investor=person, advisor=advisor, actor=admin)
    if rate is not None:
        preferences_update(investor=person, data={"esg_exclusions": [], "marginal_tax_rate": rate})
    return person


def account(owner, account_type: str = AccountType.TAXABLE) -> Account:  # type: ignore[no-untyped-def]
    return Account.objects.create(owner=owner, name=f"{account_type} of {owner.email}", account_type=account_type)


@pytest.fixture
def run(market_data):  # type: ignore[no-untyped-def]
    return model_portfolios_build(as_of=market_date_latest())


@pytest.fixture
def muni_level(run) -> int:  # type: ignore[no-untyped-def]
    """A risk level whose model portfolio holds municipal bonds, so the rule matters there."""
    holding = [
        p.risk_level
        for p in ModelPortfolio.objects.filter(
            run=run, weights__asset__ticker="MUB", weights__weight__gt=Decimal("0.01")
        )
    ]
    assert holding, "the model portfolios hold no municipal bonds on the test data"
    return min(holding)


def model_weights(run, level: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    portfolio = ModelPortfolio.objects.get(run=run, risk_level=level)
    return {w.asset.ticker: str(w.weight) for w in portfolio.weights.select_related("asset")}


def test_the_rule_by_account_type_and_tax_rate(run, muni_level, carol, erin) -> None:  # type: ignore[no-untyped-def]
    # given: a low (12%), an at-threshold (24%) and a high (35%) bracket, one without preferences, and two IRAs
    low = investor("low@example.com", "0.12", carol, erin)
    at = investor("at@example.com", str(THRESHOLD), carol, erin)
    high = investor("high@example.com", "0.35", carol, erin)
    silent = investor("silent@example.com", None, carol, erin)
    accounts = {
        "below": account(low),
        "at": account(at),
        "above": account(high),
        "no preferences": account(silent),
        "traditional IRA": account(high, AccountType.TRADITIONAL_IRA),
        "Roth IRA": account(high, AccountType.ROTH_IRA),
    }
    # when
    targets = personal_targets_build(
        optimization_run=run, accounts_with_levels=[(a, muni_level) for a in accounts.values()]
    )
    # then: at or above the threshold (or with no rate stated) the taxable target is the model portfolio itself
    by_case = {case: targets[a.pk] for case, a in accounts.items()}
    model = model_weights(run, muni_level)
    for case in ("at", "above", "no preferences"):
        assert by_case[case].weights == model, case
        assert by_case[case].binding == [], case
    assert by_case["at"].pk == by_case["above"].pk == by_case["no preferences"].pk  # one shared row
    # below the threshold and in both IRAs: no municipal bonds, and the rule is named with its cost
    reasons = {
        "below": "The tax rule: no municipal bonds at a marginal tax rate below 24%, where their tax exemption is "
        "worth less than their lower yield",
        "traditional IRA": "The tax rule: no municipal bonds in a traditional IRA, where their tax exemption is wasted",
        "Roth IRA": "The tax rule: no municipal bonds in a Roth IRA, where their tax exemption is wasted",
    }
    for case, label in reasons.items():
        target = by_case[case]
        assert "MUB" not in target.weights, case
        assert sum(Decimal(w) for w in target.weights.values()) == Decimal(1)
        [rule] = target.binding
        assert rule["kind"] == "exclusion" and rule["assets"] == ["MUB"] and rule["label"] == label
        # a cost either way: return given up, or volatility added (relaxing it never makes both worse)
        assert rule["expected_return_cost"] > 0 or rule["volatility_cost"] > 0
    assert by_case["below"].constraints["municipal_rate_floor"] == 0.24
    assert by_case["traditional IRA"].constraints["account_type"] == AccountType.TRADITIONAL_IRA
    # three rules, three signatures: the IRAs differ from each other only in the words of the explanation
    assert len({by_case[case].signature for case in reasons}) == 3
    assert PersonalTarget.objects.filter(optimization_run=run).count() == 4


def test_accounts_with_equal_signatures_share_one_row(run, muni_level, carol, erin) -> None:  # type: ignore[no-untyped-def]
    # given: two investors in different brackets, both below the threshold: the rule, not the rate, is signed
    first = account(investor("ten@example.com", "0.10", carol, erin))
    second = account(investor("twentytwo@example.com", "0.22", carol, erin))
    # when
    targets = personal_targets_build(
        optimization_run=run, accounts_with_levels=[(first, muni_level), (second, muni_level)]
    )
    # then
    assert targets[first.pk].pk == targets[second.pk].pk
    assert PersonalTarget.objects.filter(optimization_run=run).count() == 1
    assert "MUB" not in targets[first.pk].weights


def test_an_ira_and_a_taxable_account_of_the_same_investor_get_different_targets(run, muni_level, carol, erin) -> None:  # type: ignore[no-untyped-def]
    # given: a high-bracket investor with a taxable account and a traditional IRA
    person = investor("both@example.com", "0.37", carol, erin)
    taxable, ira = account(person), account(person, AccountType.TRADITIONAL_IRA)
    # when
    targets = personal_targets_build(
        optimization_run=run, accounts_with_levels=[(taxable, muni_level), (ira, muni_level)]
    )
    # then: the taxable account holds the model's municipal bonds, the IRA puts them elsewhere
    assert Decimal(targets[taxable.pk].weights["MUB"]) > Decimal("0.01")
    assert "MUB" not in targets[ira.pk].weights
    assert targets[taxable.pk].signature != targets[ira.pk].signature
    assert targets[taxable.pk].weights != targets[ira.pk].weights

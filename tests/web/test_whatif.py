"""The advisors' what-if through its API (and its page where the page says more): each objective, each kind of
constraint, infeasible sets, and who may ask. Nothing is ever written."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from compliance.services import restricted_add
from portfolios.models import ModelPortfolio, OptimizationRun, PersonalTarget, Recommendation
from portfolios.objectives import risk_contributions
from portfolios.policy import DEFAULT_BOND_CASH_MINIMUM
from portfolios.selectors import optimization_run_current
from portfolios.services.optimization import run_market
from portfolios.services.pipeline import pipeline_run
from portfolios.services.recommendations import recommendation_approve, recommendation_execute
from portfolios.universe import ASSETS, ESG_FLAGS_BY_TICKER

pytestmark = pytest.mark.django_db

URL = "/api/model-portfolios/what-if/"
CLASS_OF = {t: c for t, _, c, _ in ASSETS}
EQUITY = {"VTI", "IJR", "VEA", "VWO"}
BOND_CASH = {"AGG", "SHY", "IEF", "TLT", "TIP", "LQD", "HYG", "MUB", "BIL"}


@pytest.fixture
def built(funded_alice):  # type: ignore[no-untyped-def]
    pipeline_run()
    return funded_alice


def ask(client, **params):  # type: ignore[no-untyped-def]
    return client.get(URL, params)


def weights(body: dict) -> dict[str, Decimal]:  # type: ignore[type-arg]
    return {w["ticker"]: Decimal(w["weight"]) for w in body["weights"]}


def share(body: dict, tickers: set[str]) -> Decimal:  # type: ignore[type-arg]
    return sum((w for t, w in weights(body).items() if t in tickers), Decimal(0))


def stored() -> tuple[int, int, int, int]:
    return (
        OptimizationRun.objects.count(),
        ModelPortfolio.objects.count(),
        PersonalTarget.objects.count(),
        AuditEvent.objects.count(),
    )


def model(level: int) -> ModelPortfolio:
    return ModelPortfolio.objects.get(run=optimization_run_current(), risk_level=level)


def model_weights(level: int) -> dict[str, Decimal]:
    return {w.asset.ticker: w.weight for w in model(level).weights.select_related("asset")}


def assert_sane(body: dict) -> None:  # type: ignore[type-arg]
    assert sum(weights(body).values(), Decimal(0)) == Decimal(1)
    assert all(w >= 0 for w in weights(body).values())
    expected_return, volatility = Decimal(body["expected_return"]), Decimal(body["volatility"])
    assert abs(Decimal(body["bad_year"]) - (expected_return - Decimal("1.645") * volatility)) <= Decimal("0.000001")


# --- objectives -----------------------------------------------------------------------------------------


def test_mean_variance_with_the_runs_constraints_reproduces_the_model(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    before = stored()

    response = ask(client, risk_level=6)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["objective"] == "mean_variance" and body["optimization_run"] == optimization_run_current().pk
    assert {t: w for t, w in weights(body).items() if w} == model_weights(6)
    assert (Decimal(body["expected_return"]), Decimal(body["volatility"])) == (
        model(6).expected_return,
        model(6).volatility,
    )
    assert body["model"]["id"] == model(6).pk and body["solve_seconds"] > 0 and body["seconds"] >= body["solve_seconds"]
    assert body["constraints"][0] == "At most 35.0% in any one fund; long-only and fully invested."
    assert stored() == before


def test_minimum_variance_is_calmer_than_any_level(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    body = ask(client, risk_level=1, objective="min_variance").json()

    assert_sane(body)
    assert Decimal(body["volatility"]) <= model(1).volatility
    assert "does not depend on the risk level" in body["notes"][0]


def test_maximum_sharpe_at_the_runs_risk_free_rate_beats_the_model_sharpe(client, built, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    _, inputs = run_market(optimization_run_current())

    body = ask(client, risk_level=5, objective="max_sharpe").json()

    assert_sane(body)
    assert body["risk_free_rate"] == round(inputs.risk_free, 6)
    rate = Decimal(str(body["risk_free_rate"]))
    sharpe = (Decimal(body["expected_return"]) - rate) / Decimal(body["volatility"])
    level_sharpe = (model(5).expected_return - rate) / model(5).volatility
    assert sharpe >= level_sharpe - Decimal("0.0005")  # the same constraints: no level has a better ratio


def test_target_volatility_at_the_models_volatility_finds_the_model(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    portfolio = model(4)

    response = ask(client, risk_level=4, objective="target_volatility", target_volatility=str(portfolio.volatility))
    body = response.json()
    assert response.status_code == 200, body

    assert_sane(body)
    assert abs(Decimal(body["volatility"]) - portfolio.volatility) <= Decimal("0.000002")
    # the model is on the frontier of the same constraints: no more return at its volatility
    assert abs(Decimal(body["expected_return"]) - portfolio.expected_return) <= Decimal("0.00001")


@pytest.mark.parametrize("objective", ["risk_parity", "hrp"])
def test_risk_parity_and_hrp_ignore_the_level_and_say_so(client, built, carol, objective: str) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    _, inputs = run_market(optimization_run_current())
    tickers = optimization_run_current().parameters["universe"]

    body = ask(client, risk_level=3, objective=objective).json()

    assert_sane(body)
    assert body["binding"] == [] and body["constraints"] == []
    assert "does not use the risk level nor the house constraints of level 3" in body["notes"][0]
    if objective == "risk_parity":
        found = weights(body)
        contributions = risk_contributions(np.array([float(found[t]) for t in tickers]), inputs.sigma)
        assert np.abs(contributions - 1 / len(tickers)).max() < 1e-4  # weights are rounded to 1e-6


@pytest.mark.parametrize("objective", ["risk_parity", "hrp"])
def test_risk_parity_and_hrp_refuse_constraints_by_name(client, built, carol, objective: str) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = ask(client, risk_level=3, objective=objective, max_weight="0.2", esg="weapons")

    assert response.status_code == 400
    body = response.json()
    assert "does not support the maximum weight per fund, ESG screens." in body["detail"]
    for field in ("max_weight", "esg"):
        assert body[field] == [
            f"{body['detail'].split(' allocates')[0]} does not support this constraint (long-only budget only)."
        ]


# --- constraints ----------------------------------------------------------------------------------------


def test_an_esg_screen_removes_the_flagged_funds_and_is_priced(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    flagged = {t for t, flags in ESG_FLAGS_BY_TICKER.items() if "fossil_fuels" in flags}

    body = ask(client, risk_level=7, esg="fossil_fuels").json()

    assert_sane(body)
    assert all(weights(body)[t] == 0 for t in flagged & set(weights(body)))
    [screen] = [b for b in body["binding"] if b["kind"] == "exclusion"]
    assert screen["label"] == "ESG exclusions (fossil fuel producers)" and "VTI" in screen["assets"]
    assert screen["expected_return_cost"] > 0
    assert screen["sentence"].startswith("ESG exclusions (fossil fuel producers) removes ")
    assert "Excluded by ESG exclusions (fossil fuel producers): " in " ".join(body["constraints"])


@pytest.mark.parametrize(
    ("params", "munis"),
    [
        ({"account_type": "roth_ira"}, False),
        ({"account_type": "traditional_ira"}, False),
        ({"marginal_tax_rate": "0.12"}, False),
        ({"marginal_tax_rate": "0.24"}, True),
        ({"marginal_tax_rate": "0.35", "account_type": "taxable"}, True),
    ],
)
def test_account_type_and_tax_rate_apply_the_municipal_rule(client, built, carol, params, munis: bool) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    level = next(lv for lv in range(1, 11) if model_weights(lv).get("MUB", 0) > Decimal("0.01"))

    body = ask(client, risk_level=level, **params).json()

    assert_sane(body)
    assert (weights(body)["MUB"] > 0) is munis
    rules = [b for b in body["binding"] if b["name"].startswith("the tax rule")]
    assert bool(rules) is not munis


def test_class_limits_replace_or_add_to_the_policys(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = client.get(URL + "?risk_level=10&class_limits=equity::0.2&class_limits=gold:0.06:")

    body = response.json()
    assert response.status_code == 200, body
    assert_sane(body)
    assert share(body, EQUITY) <= Decimal("0.200001") and weights(body)["GLD"] >= Decimal("0.059999")
    kinds = {(b["kind"], b["name"]) for b in body["binding"]}
    assert ("class_maximum", "equity") in kinds
    equity = next(b for b in body["binding"] if b["name"] == "equity")
    assert equity["label"] == "The equity maximum of 20.0%" and equity["expected_return_cost"] > 0
    assert (
        "equity: at most 20.0%." in body["constraints"]
        and "Gold: at least 6.0% and at most 100.0%." not in (body["constraints"])
    )


def test_the_bond_cash_minimum_replaces_the_levels(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    assert DEFAULT_BOND_CASH_MINIMUM[9] < 0.9

    body = ask(client, risk_level=9, bond_cash_minimum="0.9").json()

    assert_sane(body)
    assert share(body, BOND_CASH) >= Decimal("0.899999")
    [floor] = [b for b in body["binding"] if b["kind"] == "bond_cash_minimum"]
    assert floor["label"] == "The bond/cash minimum of 90.0%" and floor["expected_return_cost"] > 0


def test_the_restricted_list_applies_only_when_asked(client, built, carol, erin) -> None:  # type: ignore[no-untyped-def]
    largest = max(model_weights(8).items(), key=lambda item: item[1])[0]
    restricted_add(actor=erin, ticker=largest, reason="Under review")
    client.force_login(carol)
    before = stored()

    plain = ask(client, risk_level=8).json()
    screened = ask(client, risk_level=8, restricted_list="true").json()

    assert weights(plain)[largest] > 0 and weights(screened)[largest] == 0
    assert any(b["name"] == "compliance restricted list" for b in screened["binding"])
    assert stored() == before


@pytest.fixture
def invested(built, carol):  # type: ignore[no-untyped-def]
    """Alice's account after her first recommendation was approved and filled: holds her level's target."""
    rec = Recommendation.objects.get()
    recommendation_approve(recommendation_id=rec.pk, advisor=carol, comment="ok")
    recommendation_execute(recommendation_id=rec.pk)
    return rec.account


def test_holdings_with_a_turnover_limit_bound_what_is_sold(client, invested, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    before = stored()

    body = ask(client, risk_level=10, account=invested.pk, turnover_limit="0.05").json()

    assert_sane(body)
    current = {w["ticker"]: Decimal(w["current_weight"]) for w in body["weights"]}
    assert sum(current.values(), Decimal(0)) > Decimal("0.9")  # invested, a little cash left
    sold = sum((max(c - weights(body)[t], Decimal(0)) for t, c in current.items()), Decimal(0))
    assert sold <= Decimal("0.05") + Decimal("0.00002")  # weights are rounded to 1e-6 per fund
    [limit] = [b for b in body["binding"] if b["kind"] == "turnover_limit"]
    assert limit["label"] == "The turnover limit of 5.0%" and limit["expected_return_cost"] > 0
    assert body["account"] == invested.pk
    assert any("is cash or funds outside the model universe" in note for note in body["notes"])
    assert stored() == before


def test_holdings_with_a_high_transaction_cost_keep_the_current_weights(client, invested, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    cheap = ask(client, risk_level=10, account=invested.pk, transaction_cost="0.0001").json()
    dear = ask(client, risk_level=10, account=invested.pk, transaction_cost="0.05").json()

    def traded(body: dict) -> Decimal:  # type: ignore[type-arg]
        return sum(
            (abs(weights(body)[w["ticker"]] - Decimal(w["current_weight"])) for w in body["weights"]), Decimal(0)
        )

    assert traded(dear) < traded(cheap)
    assert any(b["kind"] == "transaction_cost" for b in dear["binding"])


def test_the_page_shows_objective_binding_constraints_and_solve_time(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = client.get(reverse("model-whatif"), {"risk_level": 2, "objective": "min_variance", "esg": "weapons"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Level 2: minimum variance against the model portfolio" in page
    assert 'id="whatif-binding"' in page and "ESG exclusions (weapons and defence manufacturers)" in page
    assert 'id="whatif-time">Solved in ' in page
    result = response.context["whatif"]
    assert result.objective == "min_variance" and result.binding


# --- refusals -------------------------------------------------------------------------------------------


def test_an_infeasible_set_lists_each_conflict_with_field_messages(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    before = stored()
    bonds = sorted(BOND_CASH - {"AGG"})

    response = client.get(URL, {"risk_level": 5, "bond_cash_minimum": "0.5", "exclude": bonds, "max_weight": "0.05"})

    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("Infeasible: no portfolio satisfies these constraints: ")
    assert body["bond_cash_minimum"] == [
        "bond/cash minimum 0.5 above the 0.05 the bond and cash funds can hold after exclusions"
    ]
    assert body["constraints"] == [f"per-asset maxima sum to 0.4 < 1 after excluding {', '.join(bonds)}"]
    assert "Traceback" not in response.content.decode()
    assert stored() == before
    page = client.get(
        reverse("model-whatif"), {"risk_level": 5, "bond_cash_minimum": "0.5", "exclude": bonds, "max_weight": "0.05"}
    )
    assert page.status_code == 400
    assert page.context["errors"] == [
        f"Infeasible: per-asset maxima sum to 0.4 < 1 after excluding {', '.join(bonds)}.",
        "Infeasible: bond/cash minimum 0.5 above the 0.05 the bond and cash funds can hold after exclusions.",
    ]


def test_a_conflict_only_the_solver_sees_is_refused_too(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = ask(client, risk_level=2, class_limits="equity:0.5:")  # level 2 keeps 75% in bonds and cash

    assert response.status_code == 400
    assert response.json()["constraints"] == [
        "the constraints together leave no portfolio (solver CLARABEL: infeasible)"
    ]


def test_target_volatility_below_the_floor_is_refused_with_the_floor(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    body = ask(client, risk_level=5, objective="target_volatility", target_volatility="0.001").json()

    assert "Target volatility 0.10% is below the" in body["detail"]
    assert body["target_volatility"][0].startswith("Target volatility 0.10% is below the")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "risk_level", "This field is required."),
        ({"risk_level": "11"}, "risk_level", "Ensure this value is less than or equal to 10."),
        ({"risk_level": "3", "objective": "best"}, "objective", "Select a valid choice. best is not one of the"),
        ({"risk_level": "3", "objective": "target_volatility"}, "target_volatility", "Give the target volatility"),
        ({"risk_level": "3", "target_volatility": "0.1"}, "target_volatility", "applies only to the target-volatility"),
        ({"risk_level": "3", "esg": "gambling"}, "esg", "Select a valid choice. gambling is not one of the"),
        ({"risk_level": "3", "account_type": "401k"}, "account_type", "Select a valid choice. 401k is not one of"),
        ({"risk_level": "3", "marginal_tax_rate": "0.9"}, "marginal_tax_rate", "less than or equal to 0.6"),
        ({"risk_level": "3", "class_limits": "equity:0.6:0.2"}, "class_limits", "the minimum is above the maximum"),
        ({"risk_level": "3", "class_limits": "crypto::0.1"}, "class_limits", "'crypto' is neither an asset class"),
        ({"risk_level": "3", "class_limits": "us_mid::0.1"}, "class_limits", "No model fund in: us_mid"),
        ({"risk_level": "3", "class_limits": "equity"}, "class_limits", "write class:minimum:maximum"),
        ({"risk_level": "3", "bond_cash_minimum": "1.5"}, "bond_cash_minimum", "less than or equal to 1"),
        ({"risk_level": "3", "turnover_limit": "0.1"}, "account", "Choose the account whose holdings"),
        ({"risk_level": "3", "run": "999999"}, "run", "No succeeded optimization run has the id 999999."),
    ],
)
def test_bad_parameters_are_a_400_with_field_messages(client, built, carol, params, field, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    before = stored()

    response = client.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    assert any(message in line for line in body[field]), body
    assert stored() == before


def test_another_advisors_client_account_is_refused(client, invested, dave) -> None:  # type: ignore[no-untyped-def]
    client.force_login(dave)  # an advisor, but not Alice's

    response = ask(client, risk_level=5, account=invested.pk, turnover_limit="0.1")

    assert response.status_code == 400
    assert response.json()["account"] == ["No account of yours has this id."]


def test_investors_and_anonymous_users_are_refused(client, built) -> None:  # type: ignore[no-untyped-def]
    assert ask(client, risk_level=5).status_code in (401, 403)
    client.force_login(built)
    assert ask(client, risk_level=5).status_code == 403


def test_before_any_optimization_the_api_says_so(client, erin, market_data) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)

    response = ask(client, risk_level=5)

    assert response.status_code == 409
    assert response.json() == {"detail": "No optimization has run yet: run the pipeline, then ask again."}


def test_another_stored_run_can_be_chosen(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    run = optimization_run_current()
    client.force_login(carol)

    body = ask(client, risk_level=5, run=run.pk).json()

    assert body["optimization_run"] == run.pk and body["as_of"] == run.as_of.isoformat()
    assert CLASS_OF["VTI"] == "us_large"


def test_the_service_checks_the_role_and_the_account_again(built, carol, dave) -> None:  # type: ignore[no-untyped-def]
    from advisor.errors import NotAllowedError
    from portfolios.services.whatif import model_portfolio_whatif

    run = optimization_run_current()
    account = built.accounts.get()
    before = stored()

    with pytest.raises(NotAllowedError) as investor:
        model_portfolio_whatif(run=run, risk_level=5, actor=built)
    with pytest.raises(NotAllowedError) as outsider:
        model_portfolio_whatif(run=run, risk_level=5, account=account, turnover_limit=Decimal("0.1"), actor=dave)
    mine = model_portfolio_whatif(run=run, risk_level=5, account=account, turnover_limit=Decimal("0.1"), actor=carol)

    assert investor.value.message == "Only advisors and admins compute what-ifs."
    assert outsider.value.fields == {"account": "Not one of your accounts."}
    assert mine.account == account and mine.weights[0].current_weight is not None
    assert stored() == before

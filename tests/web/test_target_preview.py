"""Target-allocation preview (result page, dashboard) and the advisors' model-portfolio page with its what-if."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from portfolios.models import ModelPortfolio, OptimizationRun
from portfolios.outlook import explain_level
from portfolios.selectors import optimization_run_current
from portfolios.services.pipeline import pipeline_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def built(funded_alice):  # type: ignore[no-untyped-def]
    """Alice funded and profiled; the pipeline has built the ten model portfolios."""
    pipeline_run()
    return funded_alice


def chart_data(page: str) -> dict:  # type: ignore[type-arg]
    found = re.search(r'<script id="target-frontier-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the preview's chart data is missing"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def point(portfolio: ModelPortfolio) -> dict[str, float | int]:
    return {
        "x": round(float(portfolio.volatility) * 100, 2),
        "y": round(float(portfolio.expected_return) * 100, 2),
        "level": portfolio.risk_level,
    }


def pct(value: Decimal, places: int = 1) -> str:
    return f"{value * 100:.{places}f}%"


def whatif(client, **params):  # type: ignore[no-untyped-def]
    return client.get(reverse("model-whatif"), params)


def stored() -> tuple[int, int, int]:
    return OptimizationRun.objects.count(), ModelPortfolio.objects.count(), AuditEvent.objects.count()


def assert_preview(page: str, level: int) -> None:
    run = optimization_run_current()
    portfolio = ModelPortfolio.objects.get(run=run, risk_level=level)
    weights = list(portfolio.weights.select_related("asset__asset_class"))
    # classes, with their summed weights, then funds
    by_class: dict[str, Decimal] = {}
    for w in weights:
        by_class[w.asset.asset_class.name] = by_class.get(w.asset.asset_class.name, Decimal(0)) + w.weight
    classes = page[page.index('id="target-classes"') : page.index('id="target-funds"')]
    for name, weight in by_class.items():
        assert f'<td>{name}</td><td class="num">{pct(weight)}</td>' in classes, name
    funds = page[page.index('id="target-funds"') :]
    for w in weights:
        assert f"<td>{w.asset.ticker} <span" in funds and pct(w.weight) in funds, w.asset.ticker
    # expected return, volatility and the bad year, worded as a loss only when negative
    outlook = explain_level(portfolio)
    assert outlook is not None
    assert f'id="target-expected-return">{pct(portfolio.expected_return)}<' in page
    assert f'id="target-volatility">{pct(portfolio.volatility)}<' in page
    assert f'id="target-bad-year-return">{pct(outlook["bad_year"])}<' in page
    if outlook["bad_year_loss"]:
        assert f"could lose <strong>{pct(outlook['bad_year_loss'])}</strong> or more" in page
    else:
        assert f"Even a bad year (one in twenty) is expected to end around <strong>{pct(outlook['bad_year'])}" in page
    # the frontier of all ten levels with the investor's point
    data = chart_data(page)
    everyone = ModelPortfolio.objects.filter(run=run).order_by("risk_level")
    assert data == {"frontier": [point(p) for p in everyone], "investor": point(portfolio)}
    assert "js/frontier_preview.js" in page and "vendor/chartjs/chart.umd.min.js" in page


def test_the_result_page_previews_the_target(client, built) -> None:  # type: ignore[no-untyped-def]
    level = built.risk_profiles.order_by("-version").first().effective_risk_level
    client.force_login(built)

    page = client.get(reverse("profile-result")).content.decode()

    assert 'id="target-portfolio"' in page
    assert_preview(page, level)


def test_the_dashboard_previews_the_target(client, built) -> None:  # type: ignore[no-untyped-def]
    level = built.risk_profiles.order_by("-version").first().effective_risk_level
    client.force_login(built)

    page = client.get(reverse("dashboard")).content.decode()

    assert 'id="your-target"' in page and f'Your target <span class="muted">level {level}</span>' in page
    assert_preview(page, level)


def test_the_bad_year_is_worded_as_a_loss_only_when_negative(client, built) -> None:  # type: ignore[no-untyped-def]
    """Level 1 is calm, level 10 is not: the same include words them differently."""
    from portfolios.selectors import target_preview

    calm, risky = target_preview(1), target_preview(10)
    assert risky.outlook is not None and risky.outlook["bad_year"] < 0
    assert risky.chart["investor"] == point(risky.portfolio)  # type: ignore[arg-type]
    assert calm.classes and sum((c.weight for c in calm.classes), Decimal(0)) == Decimal(1)
    assert sum((f.weight for f in calm.funds), Decimal(0)) == Decimal(1)


def test_no_model_portfolios_yet(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)

    page = client.get(reverse("profile-result")).content.decode()

    assert "Model portfolios are built by the nightly pipeline; none exists yet." in page
    assert "target-frontier-data" not in page


def test_advisors_see_statistics_runs_with_timings_and_the_whatif_form(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    run = optimization_run_current()
    assert run is not None
    client.force_login(carol)

    page = client.get(reverse("model-portfolios")).content.decode()

    runs = page[page.index('id="optimization-runs"') :]
    assert f"<td>{run.as_of}</td>" in runs and "Succeeded" in runs and f"<td>{run.solver}</td>" in runs
    assert f">{run.data_hash[:12]}</code>" in runs
    t = run.timings
    assert (
        f"load {t['load_seconds']}; estimate {t['estimate_seconds']}; first solve {t['first_solve_seconds']}; "
        f"resolve mean {t['resolve_seconds_mean']}; optimize {t['optimize_seconds']}; total {t['total_seconds']}<"
    ) in runs
    statistics = page[page.index('id="model-statistics"') : page.index('id="whatif"')]
    assert statistics.count("<tr><td>") == 10
    assert 'id="whatif-form"' in page and 'name="risk_level"' in page and 'value="VTI"' in page


def test_runs_show_failures_with_their_error(client, built, erin) -> None:  # type: ignore[no-untyped-def]
    run = optimization_run_current()
    OptimizationRun.objects.create(
        as_of=run.as_of, data_hash="f" * 64, fingerprint="x", status="failed", error="Solver CLARABEL ended badly."
    )
    client.force_login(erin)

    runs = client.get(reverse("model-portfolios")).content.decode().split('id="optimization-runs"')[1]

    assert "Failed" in runs and "Solver CLARABEL ended badly." in runs and ">ffffffffffff</code>" in runs


def test_whatif_level_3_with_an_exclusion(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    run = optimization_run_current()
    model = ModelPortfolio.objects.get(run=run, risk_level=3)
    largest = model.weights.select_related("asset").first().asset.ticker  # weights are ordered largest first
    client.force_login(carol)
    before = stored()

    response = whatif(client, risk_level=3, exclude=[largest])

    assert response.status_code == 200
    result = response.context["whatif"]
    weights = {w.ticker: w.weight for w in result.weights}
    assert weights[largest] == 0 and sum(weights.values(), Decimal(0)) == Decimal(1)
    assert all(w.weight <= Decimal("0.35") for w in result.weights)
    assert result.model == model and result.inputs_match_run
    assert result.volatility >= model.volatility or result.expected_return <= model.expected_return  # no free lunch
    page = response.content.decode()
    assert re.search(rf'<tr data-ticker="{largest}">.*?excluded.*?<td class="num">0\.0%</td>', page)
    assert 'id="whatif-total">100.0%<' in page
    assert (
        f'<td class="num">{pct(result.expected_return, 2)}</td><td class="num">{pct(model.expected_return, 2)}' in page
    )
    assert stored() == before  # computed on demand, nothing written


def test_whatif_with_the_runs_constraints_reproduces_the_model(client, built, erin) -> None:  # type: ignore[no-untyped-def]
    run = optimization_run_current()
    model = ModelPortfolio.objects.get(run=run, risk_level=7)
    client.force_login(erin)

    result = whatif(client, risk_level=7).context["whatif"]

    assert result.max_weight == Decimal(str(run.parameters["max_asset_weight"])) and result.excluded == ()
    assert {w.ticker: w.weight for w in result.weights if w.weight} == {
        w.asset.ticker: w.weight for w in model.weights.select_related("asset")
    }
    assert (result.expected_return, result.volatility) == (model.expected_return, model.volatility)


def test_whatif_max_weight_lowers_the_largest_position(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    result = whatif(client, risk_level=10, max_weight="0.2").context["whatif"]

    assert max(w.weight for w in result.weights) <= Decimal("0.2")
    assert sum((w.weight for w in result.weights), Decimal(0)) == Decimal(1)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"risk_level": "0"}, "risk_level", "Ensure this value is greater than or equal to 1."),
        ({"risk_level": "11"}, "risk_level", "Ensure this value is less than or equal to 10."),
        ({"risk_level": "three"}, "risk_level", "Enter a whole number."),
        ({"max_weight": "0.3"}, "risk_level", "This field is required."),
        (
            {"risk_level": "3", "max_weight": "0.01"},
            "max_weight",
            "Ensure this value is greater than or equal to 0.05.",
        ),
        ({"risk_level": "3", "max_weight": "1.5"}, "max_weight", "Ensure this value is less than or equal to 1."),
        ({"risk_level": "3", "max_weight": "lots"}, "max_weight", "Enter a number."),
        ({"risk_level": "3", "exclude": "SPY"}, "exclude", "Select a valid choice. SPY is not one of the available"),
    ],
)
def test_whatif_bad_input_is_a_400_with_field_messages(client, built, carol, params, field, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)
    before = stored()

    response = whatif(client, **params)

    assert response.status_code == 400
    assert any(message in e for e in response.context["form"].errors[field]), response.context["form"].errors
    assert message in response.content.decode().replace("&#x27;", "'")
    assert response.context["whatif"] is None and stored() == before


def test_whatif_infeasible_names_the_constraint(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    funds = len(optimization_run_current().parameters["universe"])
    client.force_login(carol)
    before = stored()

    response = whatif(client, risk_level=3, max_weight="0.05")

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="whatif-error"' in page and "Traceback" not in page
    assert f"Infeasible: per-asset maxima sum to {funds * 0.05:g} &lt; 1." in page
    assert response.context["whatif"] is None and stored() == before


def test_whatif_infeasible_through_exclusions(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    universe = optimization_run_current().parameters["universe"]
    client.force_login(carol)

    two_left = whatif(client, risk_level=5, max_weight="0.4", exclude=universe[2:])
    none_left = whatif(client, risk_level=5, exclude=universe)

    assert two_left.status_code == 400
    assert f"Infeasible: per-asset maxima sum to 0.8 &lt; 1 after excluding {', '.join(universe[2:])}." in (
        two_left.content.decode()
    )
    assert none_left.status_code == 400
    assert "Infeasible: every asset is excluded (excluded in this what-if)." in none_left.content.decode()


def test_investors_cannot_use_the_whatif_and_see_no_runs(client, built) -> None:  # type: ignore[no-untyped-def]
    client.force_login(built)

    assert whatif(client, risk_level=3).status_code == 403
    page = client.get(reverse("model-portfolios")).content.decode()

    assert "Level 1 " in page  # the plain list is still there
    for staff_only in ('id="optimization-runs"', 'id="model-statistics"', 'id="whatif-form"', "Last optimization runs"):
        assert staff_only not in page


def test_whatif_without_parameters_shows_the_empty_form(client, built, carol) -> None:  # type: ignore[no-untyped-def]
    client.force_login(carol)

    response = whatif(client)

    assert response.status_code == 200 and response.context["whatif"] is None
    assert 'id="whatif-form"' in response.content.decode() and "errorlist" not in response.content.decode()


def test_before_any_optimization_staff_pages_say_so(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)

    page = client.get(reverse("model-portfolios")).content.decode()
    response = whatif(client, risk_level=3)

    assert "No optimization has run yet" in page and "No optimization runs yet." in page
    assert response.status_code == 200 and "No optimization has run yet: run the pipeline, then compare." in (
        response.content.decode()
    )

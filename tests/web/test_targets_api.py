"""The asset-universe and account-target APIs, and "Why this target" on the investor's dashboard."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from portfolios.models import Asset, PersonalTarget, Price
from portfolios.outlook import bad_year_return
from portfolios.selectors import optimization_run_current
from portfolios.services.pipeline import pipeline_run
from portfolios.universe import ASSETS, ESG_FLAGS_BY_TICKER
from profiling.services.goals import preferences_update

pytestmark = pytest.mark.django_db


def target_url(account_id: int) -> str:
    return reverse("api-account-target", kwargs={"pk": account_id})


# --- /api/assets/ ---------------------------------------------------------------------------------------


def test_the_universe_lists_every_fund_with_its_history(client, bob, market_data) -> None:  # type: ignore[no-untyped-def]
    client.force_login(bob)  # any logged-in user

    response = client.get("/api/assets/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(ASSETS) == len(body["results"])
    first = Price.objects.order_by("date").values_list("date", flat=True).first()
    last = Price.objects.order_by("-date").values_list("date", flat=True).first()
    assert body["estimation_window"] == {"start": date(last.year - 3, last.month, last.day).isoformat(),
                                         "end": last.isoformat(), "years": 3}  # fmt: skip
    vti = next(row for row in body["results"] if row["ticker"] == "VTI")
    assert vti == {
        "ticker": "VTI",
        "name": Asset.objects.get(ticker="VTI").name,
        "asset_class": "us_large",
        "asset_class_name": "US large-cap stocks",
        "kind": "equity",
        "in_model_universe": True,
        "expense_ratio": "0.000300",
        "esg_flags": list(ESG_FLAGS_BY_TICKER["VTI"]),
        "tax_treatment": Asset.objects.get(ticker="VTI").tax_treatment,
        "substitute": "ITOT",
        "tracks_index": Asset.objects.get(ticker="VTI").tracks_index,
        "first_price_date": first.isoformat(),
        "last_price_date": last.isoformat(),
        "history_covers_window": True,
    }
    gold = next(row for row in body["results"] if row["ticker"] == "GLD")
    assert gold["substitute"] is None


def test_a_fund_with_a_shorter_history_is_flagged_not_hidden(client, bob, market_data) -> None:  # type: ignore[no-untyped-def]
    last = Price.objects.order_by("-date").values_list("date", flat=True).first()
    Price.objects.filter(asset__ticker="VWO", date__lt=date(last.year - 1, 1, 1)).delete()  # as if it started late
    client.force_login(bob)

    rows = {row["ticker"]: row for row in client.get("/api/assets/").json()["results"]}

    assert rows["VWO"]["history_covers_window"] is False
    assert rows["VWO"]["first_price_date"] >= date(last.year - 1, 1, 1).isoformat()
    assert rows["BIL"]["history_covers_window"] is True


def test_the_universe_needs_a_login(client, market_data) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/assets/").status_code in (401, 403)


# --- /api/accounts/<id>/target/ --------------------------------------------------------------------------


@pytest.fixture
def screened(funded_alice):  # type: ignore[no-untyped-def]
    """Alice excludes fossil fuels; the pipeline has built her personal target."""
    preferences_update(investor=funded_alice, data={"esg_exclusions": ["fossil_fuels"], "marginal_tax_rate": "0.32"})
    pipeline_run()
    return funded_alice.accounts.get()


def test_the_owner_reads_the_target_with_why(client, screened) -> None:  # type: ignore[no-untyped-def]
    client.force_login(screened.owner)
    target = PersonalTarget.objects.get()
    run = optimization_run_current()

    response = client.get(target_url(screened.pk))

    assert response.status_code == 200
    body = response.json()
    assert body["account"] == screened.pk and body["risk_level"] == target.risk_level
    assert body["optimization_run"]["id"] == run.pk and body["optimization_run"]["as_of"] == run.as_of.isoformat()
    weights = {w["ticker"]: Decimal(w["weight"]) for w in body["weights"]}
    assert weights == {t: Decimal(w) for t, w in target.weights.items()}
    assert sum(weights.values(), Decimal(0)) == Decimal(1)
    assert [w["weight"] for w in body["weights"]] == sorted((w["weight"] for w in body["weights"]), reverse=True)
    assert sum((Decimal(c["weight"]) for c in body["classes"]), Decimal(0)) == Decimal(1)
    assert {c["code"] for c in body["classes"]} == set(
        Asset.objects.filter(ticker__in=list(weights)).values_list("asset_class__code", flat=True)
    )
    assert Decimal(body["expected_return"]) == target.expected_return
    assert Decimal(body["bad_year"]) == bad_year_return(target.expected_return, target.volatility).quantize(
        Decimal("0.000001")
    )
    [screen] = body["binding"]
    assert screen["kind"] == "exclusion" and screen["label"] == "Your exclusion of fossil fuel producers"
    assert screen["sentence"].startswith("Your exclusion of fossil fuel producers removes ")
    assert "percentage points of expected return a year" in screen["sentence"]
    assert body["constraints"]["account_type"] == "taxable"
    assert any(
        line.endswith("excluded: ESG exclusions (fossil fuel producers).") for line in body["constraints_description"]
    )
    assert not any(t in weights for t, flags in ESG_FLAGS_BY_TICKER.items() if "fossil_fuels" in flags)


def test_the_assigned_advisor_and_admins_read_it_others_get_404(client, screened, carol, erin, bob, dave) -> None:  # type: ignore[no-untyped-def]
    for reader in (carol, erin):
        client.force_login(reader)
        assert client.get(target_url(screened.pk)).status_code == 200
    for outsider in (bob, dave):
        client.force_login(outsider)
        assert client.get(target_url(screened.pk)).status_code == 404
    client.logout()
    assert client.get(target_url(screened.pk)).status_code in (401, 403)


def test_no_target_built_yet_is_a_clear_404(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    level = funded_alice.risk_profiles.get().effective_risk_level

    response = client.get(target_url(funded_alice.accounts.get().pk))

    assert response.status_code == 404
    assert response.json() == {
        "detail": f"No personal target has been built yet for this account at risk level {level}: the nightly "
        "pipeline builds it after the next optimization run."
    }


def test_an_owner_without_a_risk_profile_has_no_target(client, bob, market_data) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.accounts import account_open

    account = account_open(owner=bob)
    client.force_login(bob)

    response = client.get(target_url(account.pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "The owner of this account has no risk profile yet, so it has no target."}


# --- the dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_says_why_the_target_differs_from_the_model(client, screened) -> None:  # type: ignore[no-untyped-def]
    client.force_login(screened.owner)
    [binding] = PersonalTarget.objects.get().binding

    page = client.get(reverse("dashboard")).content.decode()

    why = page[page.index('id="why-target"') : page.index('id="your-target"')]
    assert "<h2>Why this target</h2>" in why and screened.name in why
    assert "Your exclusion of fossil fuel producers removes " in why
    cost = f"costing about {binding['expected_return_cost'] * 100:.1f} percentage points of expected return a year"
    assert cost in why


def test_the_dashboard_says_when_the_target_is_the_model_itself(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    client.force_login(funded_alice)
    level = funded_alice.risk_profiles.get().effective_risk_level

    page = client.get(reverse("dashboard")).content.decode()

    assert f"Your target is the model portfolio of risk level {level}: none of your preferences" in page


def test_no_why_section_before_any_target(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    assert 'id="why-target"' not in client.get(reverse("dashboard")).content.decode()

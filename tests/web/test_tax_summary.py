"""The yearly tax summary, lots and realized gains of an account: selector, API and pages, on the broker's fills."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from portfolios.models import Account, AccountType, TradePurpose
from portfolios.selectors_tax import TaxTotals, tax_year_summary
from portfolios.services.accounts import account_deposit
from profiling.services import preferences_update
from tests.services.trading import approve, execute, prices_set, trade

pytestmark = pytest.mark.django_db

D = Decimal
BUY, SELL = "buy", "sell"


@pytest.fixture
def year_of_trading(funded_alice, carol):  # type: ignore[no-untyped-def]
    """Alice (24% bracket) over 2026 and 2027, in her taxable account and a Roth IRA.

    2026: SPY harvested at a loss of 220.89 (4 of its 10 shares washed by an IRA purchase of VOO: 88.36
    disallowed, so 132.53 recognized), 5 VTI sold at a short-term gain of 99.45, and 2 VOO sold in the IRA
    (gain 1.84, not taxed). 2027: 3 VTI sold at a long-term gain of 89.65; 2 VTI remain.
    """
    preferences_update(
        investor=funded_alice,
        data={"esg_exclusions": [], "account_types": ["taxable"], "marginal_tax_rate": "0.24", "liquidity_need": "low"},
    )
    taxable = funded_alice.accounts.get()
    ira = Account.objects.create(owner=funded_alice, name="Roth IRA", account_type=AccountType.ROTH_IRA)
    account_deposit(account=ira, amount=D("5000.00"), actor=funded_alice)
    prices_set(date(2026, 8, 3), {"SPY": "100", "VTI": "100"})
    trade(taxable, carol, date(2026, 8, 3), (BUY, "SPY", "10"), (BUY, "VTI", "10"))
    prices_set(date(2026, 10, 5), {"SPY": "78", "VTI": "120"})
    prices_set(date(2026, 10, 20), {"VOO": "79"})
    # approved before the harvest (approval would refuse it after), filled 15 days after it: a wash sale anyway
    purchase = approve(ira, carol, date(2026, 10, 20), (BUY, "VOO", "4"))
    trade(taxable, carol, date(2026, 10, 5), (SELL, "SPY", "10"), purpose=TradePurpose.HARVEST)
    trade(taxable, carol, date(2026, 10, 5), (SELL, "VTI", "5"))
    execute(purchase, date(2026, 10, 20))
    prices_set(date(2026, 11, 2), {"VOO": "80"})
    trade(ira, carol, date(2026, 11, 2), (SELL, "VOO", "2"))
    prices_set(date(2027, 9, 1), {"VTI": "130"})
    trade(taxable, carol, date(2027, 9, 1), (SELL, "VTI", "3"))
    return {"alice": funded_alice, "taxable": taxable, "ira": ira}


def test_the_summary_separates_terms_wash_sales_harvests_and_tax_free_accounts(year_of_trading) -> None:  # type: ignore[no-untyped-def]
    # when
    summary = tax_year_summary(investor=year_of_trading["alice"], year=2026)
    # then
    assert summary.years == [2027, 2026]
    assert (summary.marginal_rate, summary.short_term_rate, summary.long_term_rate) == (D("0.24"), D("0.24"), D("0.15"))
    taxable, ira = summary.accounts
    assert not taxable.tax_advantaged and ira.tax_advantaged
    t = taxable.totals
    assert (t.short_term_gains, t.short_term_losses, t.long_term_gains, t.long_term_losses) == (
        D("99.45"), D("-132.53"), D("0"), D("0"),
    )  # fmt: skip
    assert (t.wash_sale_disallowed, t.losses_harvested, t.net) == (D("88.36"), D("132.53"), D("-33.08"))
    assert t.estimated_tax_saved == D("31.81")  # 132.53 x 24%
    assert [(s.asset.ticker, s.quantity, s.gain, s.harvest) for s in taxable.sales] == [
        ("SPY", D("6"), D("-132.53"), True),
        ("SPY", D("4"), D("-88.36"), True),
        ("VTI", D("5"), D("99.45"), False),
    ]
    assert (ira.totals.short_term_gains, ira.totals.estimated_tax_saved) == (D("1.84"), None)
    # the total is the taxable account's: the IRA's gain is not taxed
    total = summary.total
    assert (total.short_term_gains, total.net, total.estimated_tax_saved) == (D("99.45"), D("-33.08"), D("31.81"))
    assert tax_year_summary(investor=year_of_trading["alice"], year=2027).total.long_term_gains == D("89.65")


def test_long_term_harvests_are_priced_at_the_long_term_rate() -> None:
    totals = TaxTotals(short_term_harvested=D("100"), long_term_harvested=D("1000"))
    totals.price_harvest(D("0.37"))
    assert totals.estimated_tax_saved == D("237.00")  # 100 x 37% + 1000 x 20%


def test_without_a_tax_rate_the_tax_saved_is_not_estimated(funded_alice) -> None:  # type: ignore[no-untyped-def]
    summary = tax_year_summary(investor=funded_alice, year=2026)
    assert summary.marginal_rate is None and summary.total.estimated_tax_saved is None


def test_the_api_gives_the_investor_and_the_advisor_the_same_summary(year_of_trading, client, carol) -> None:  # type: ignore[no-untyped-def]
    alice = year_of_trading["alice"]
    client.force_login(alice)
    own = client.get("/api/tax-summary/?year=2026").json()
    assert own["year"] == 2026 and own["years"] == [2027, 2026]
    assert own["total"] == {
        "short_term_gains": "99.45", "short_term_losses": "-132.53", "short_term_net": "-33.08",
        "long_term_gains": "0.00", "long_term_losses": "0.00", "long_term_net": "0.00", "net": "-33.08",
        "wash_sale_disallowed": "88.36", "losses_harvested": "132.53", "estimated_tax_saved": "31.81",
    }  # fmt: skip
    washed = own["accounts"][0]["sales"][1]
    assert (washed["wash_sale_disallowed"], washed["term"], washed["sold_on"]) == ("88.36", "short", "2026-10-05")
    assert client.get("/api/tax-summary/").json()["year"] == 2027  # the market date's year
    client.force_login(carol)
    assert client.get(f"/api/clients/{alice.pk}/tax-summary/?year=2026").json() == own


@pytest.mark.parametrize("year", ["abc", "1200", "-1", "2026.5"])
def test_a_bad_year_is_refused_with_a_field_message(funded_alice, client, year) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    response = client.get(f"/api/tax-summary/?year={year}")
    assert response.status_code == 400 and response.json()["year"] == ["A year from 1900 to 2200."]
    account = funded_alice.accounts.get()
    assert client.get(f"/api/accounts/{account.pk}/realized-gains/?year={year}").status_code == 400
    assert client.get(f"/tax/?year={year}").status_code == 400


def test_account_lots_show_basis_term_and_unrealized_gain_at_the_latest_close(year_of_trading, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(year_of_trading["alice"])
    body = client.get(f"/api/accounts/{year_of_trading['taxable'].pk}/lots/").json()
    assert body["market_date"] == "2027-09-01"
    (lot,) = body["lots"]
    assert {k: v for k, v in lot.items() if k != "id"} == {
        "ticker": "VTI", "quantity": "2.000000", "original_quantity": "10.000000", "cost_per_share": "100.050000",
        "cost_basis": "200.10", "acquired_on": "2026-08-03", "holding_start": "2026-08-03",
        "long_term_from": "2027-08-04", "term_if_sold": "long", "price": "130.000000", "market_value": "260.00",
        "unrealized_gain": "59.90", "wash_sale_adjustment": "0.00",
    }  # fmt: skip
    gains = client.get(f"/api/accounts/{year_of_trading['taxable'].pk}/realized-gains/?year=2027").json()
    assert gains["count"] == 1
    assert [(g["ticker"], g["quantity"], g["gain"], g["term"]) for g in gains["results"]] == [
        ("VTI", "3.000000", "89.65", "long")
    ]
    assert client.get(f"/api/accounts/{year_of_trading['taxable'].pk}/realized-gains/").json()["count"] == 4
    page = client.get(f"/api/accounts/{year_of_trading['taxable'].pk}/realized-gains/?limit=3&offset=3").json()
    assert page["count"] == 4 and len(page["results"]) == 1 and page["next"] is None


def test_the_pages_show_the_summary_to_the_investor_and_to_her_advisor(year_of_trading, client, carol) -> None:  # type: ignore[no-untyped-def]
    alice = year_of_trading["alice"]
    client.force_login(alice)
    page = client.get("/tax/?year=2026").content.decode()
    assert 'data-testid="losses-harvested">$132.53<' in page
    assert 'data-testid="tax-saved">$31.81<' in page
    assert '<option value="2027" >2027</option>' in page and '<option value="2026" selected>2026</option>' in page
    assert "$88.36 disallowed (replaced in Roth IRA)" in page
    assert "Your realized gains" in client.get(reverse("tax-summary")).content.decode()
    client.force_login(carol)
    assert (
        reverse("advisor-client-tax", args=[alice.pk]) in client.get(f"/advisor/clients/{alice.pk}/").content.decode()
    )
    page = client.get(f"/advisor/clients/{alice.pk}/tax/?year=2027").content.decode()
    assert "Realized gains of Alice Investor in 2027" in page and 'data-testid="long-term-net">$89.65<' in page

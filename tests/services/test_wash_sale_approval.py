"""Approval re-checks the wash-sale rule across the investor's accounts: what the pipeline saw may have changed.

Trades happen after the shipped prices end (2026-07-31), at closes the tests set.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from advisor.errors import InvalidStateError
from portfolios.models import Account, AccountType, Price, Recommendation, RecommendationStatus
from portfolios.services.accounts import account_deposit
from portfolios.services.recommendations import recommendation_approve, wash_sale_conflicts
from tests.services.trading import prices_set, recommend, trade

pytestmark = pytest.mark.django_db

D = Decimal
DAY_1, DAY_2, DAY_3 = date(2026, 8, 3), date(2026, 8, 4), date(2026, 9, 8)


@pytest.fixture
def accounts(funded_alice, carol):  # type: ignore[no-untyped-def]
    """Alice's taxable account holding 100 VTI bought at $100, and a Roth IRA with $20,000 of cash."""
    taxable = funded_alice.accounts.get(account_type=AccountType.TAXABLE)
    ira = Account.objects.create(owner=funded_alice, name="Roth IRA", account_type=AccountType.ROTH_IRA)
    account_deposit(account=ira, amount=D("20000.00"), actor=funded_alice)
    prices_set(DAY_1, {"VTI": "100", "ITOT": "50", "VOO": "400"})
    trade(taxable, carol, DAY_1, ("buy", "VTI", "100"))
    prices_set(DAY_2, {"VTI": "90", "ITOT": "45", "VOO": "360"})
    return taxable, ira


def test_a_buy_that_would_wash_another_accounts_pending_harvest_is_refused(accounts, carol) -> None:  # type: ignore[no-untyped-def]
    taxable, ira = accounts
    # given: a pending harvest of the VTI loss in the taxable account, and an IRA proposal to buy VTI
    harvest = recommend(taxable, DAY_2, [("sell", "VTI", "100"), ("buy", "ITOT", "150")])
    harvest.trades.filter(side="sell").update(estimated_gain=D("-1005.00"))
    buy_vti = recommend(ira, DAY_2, [("buy", "VTI", "50")])
    buy_itot = recommend(ira, DAY_2, [("buy", "ITOT", "50")])
    # when / then: the buy of the same index is refused, naming the harvest; nothing is approved
    with pytest.raises(InvalidStateError) as refused:
        recommendation_approve(recommendation_id=buy_vti.pk, advisor=carol)
    assert refused.value.message == (
        "Approving this would break the wash-sale rule: buying VTI would wash the loss recommendation "
        f"#{harvest.pk} proposes on VTI."
    )
    assert Recommendation.objects.get(pk=buy_vti.pk).status == RecommendationStatus.PENDING
    assert not buy_vti.orders.exists()
    # and the harvest itself is refused while that buy is open; a different index (ITOT) is fine
    assert wash_sale_conflicts(harvest) == [
        f"the loss on VTI would be washed by recommendation #{buy_vti.pk}'s buy of VTI"
    ]
    assert wash_sale_conflicts(buy_itot) == []


def test_a_buy_within_30_days_of_a_realized_loss_is_refused_and_allowed_after(accounts, carol) -> None:  # type: ignore[no-untyped-def]
    taxable, ira = accounts
    # given: the VTI loss realized in the taxable account on DAY_2
    trade(taxable, carol, DAY_2, ("sell", "VTI", "100"))
    # when: the IRA is proposed VTI (same index), and VOO (the S&P 500: another index)
    vti = recommend(ira, DAY_2, [("buy", "VTI", "10")])
    voo = recommend(ira, DAY_2, [("buy", "VOO", "2")])
    # then
    assert wash_sale_conflicts(vti) == [f"buying VTI would wash the loss realized on VTI on {DAY_2}"]
    assert wash_sale_conflicts(voo) == []
    recommendation_approve(recommendation_id=voo.pk, advisor=carol)
    # and 31 days after the sale the window has closed
    prices_set(DAY_3, {"VTI": "95"})
    later = recommend(ira, DAY_3, [("buy", "VTI", "10")])
    assert wash_sale_conflicts(later) == []


def test_the_pipeline_does_not_propose_a_buy_another_accounts_open_harvest_would_wash(accounts) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.pipeline import pipeline_run

    taxable, ira = accounts
    # given: yesterday's harvest of the VTI loss waits for the advisor in the taxable account
    harvest = recommend(taxable, DAY_2, [("sell", "VTI", "100"), ("buy", "ITOT", "200")])
    harvest.trades.filter(side="sell").update(estimated_gain=D("-1005.00"))
    # when: the pipeline invests the IRA's $20,000 (the other funds close as on the last shipped day)
    for day in (DAY_1, DAY_2):
        priced = set(Price.objects.filter(date=day).values_list("asset_id", flat=True))
        Price.objects.bulk_create(
            Price(asset_id=p.asset_id, date=day, close=p.close)
            for p in Price.objects.filter(date=date(2026, 7, 31)).exclude(asset_id__in=priced)
        )
    pipeline_run(market_date=DAY_2)
    # then: the IRA buys US stocks, but not VTI (the same index as the pending loss sale), so the advisor is
    # not handed a proposal that approval would have to refuse
    proposal = Recommendation.objects.get(account=ira, market_date=DAY_2)
    bought = set(proposal.trades.filter(side="buy").values_list("asset__ticker", flat=True))
    assert bought and "VTI" not in bought
    assert wash_sale_conflicts(proposal) == []
    assert Recommendation.objects.filter(account=taxable, market_date=DAY_2).get() == harvest

"""The replay of history (`simulate`): a synthetic book through the real pipeline, approvals and broker.

The test database holds the last four years of the shipped prices; these tests add the closes from December 2016
to March 2020 (inside the test's transaction) and replay the start of the 2020 crash in two ranges of one book:
it invests on 2020-01-17, is not looked at until the crash, then is replayed from 24 to 28 February. The gap
keeps the test fast and is needed: a lot bought in the last 30 days is never harvested (the loss would be
washed), so a book that invests inside the short window of the crash cannot harvest in it. The falls of 24-28
February push equity lots past the harvesting threshold (a 5% loss and $100).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from functools import lru_cache
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from advisor.errors import InvalidStateError
from compliance.models import AuditEvent
from portfolios.models import (
    LIVE_BOOK,
    Account,
    Asset,
    CashMovement,
    Fill,
    PipelineRun,
    Price,
    RealizedGain,
    Recommendation,
    RecommendationStatus,
)
from portfolios.services.pipeline import pipeline_run
from portfolios.services.recommendations import recommendation_approve
from portfolios.services.simulation import (
    SimulationError,
    book_advisor,
    simulation_book_create,
    simulation_run,
    simulation_summary,
    synthetic_investors,
)
from tests.market import DATA
from tests.services.trading import recommend, trade

pytestmark = pytest.mark.django_db

INVEST = date(2020, 1, 17)
START, END = date(2020, 2, 24), date(2020, 2, 28)  # 5 market dates
ACCOUNTS = 5


@lru_cache(maxsize=1)
def _history() -> pd.DataFrame:
    frame = pd.read_csv(DATA, dtype={"adj_close": str})
    return frame[(frame["date"] >= "2016-12-01") & (frame["date"] <= "2020-03-31")]


@pytest.fixture
def history_2020(market_data: None) -> None:
    ids = dict(Asset.objects.values_list("ticker", "id"))
    frame = _history()
    Price.objects.bulk_create(
        [
            Price(asset_id=ids[t], date=date.fromisoformat(d), close=Decimal(c))
            for t, d, c in zip(frame["ticker"], frame["date"], frame["adj_close"], strict=True)
            if t in ids
        ],
        batch_size=5000,
    )


def replay(book: str, date_from: date = START, date_to: date = END, days: list[object] | None = None) -> None:
    simulation_run(
        date_from=date_from,
        date_to=date_to,
        book=book,
        accounts=ACCOUNTS,
        auto_approve=True,
        progress=(lambda day, i, n: days.append(day)) if days is not None else None,
    )


def summary(book: str):  # type: ignore[no-untyped-def]
    return simulation_summary(book=book, date_from=INVEST, date_to=END)


def test_the_synthetic_book_is_a_pure_function_of_its_size_and_seed() -> None:
    investors = synthetic_investors(accounts=50, seed=2020)
    assert sum(len(i.accounts) for i in investors) == 50
    assert {i.risk_level for i in investors} == set(range(1, 11))
    assert {a.account_type for i in investors for a in i.accounts} == {"taxable", "traditional_ira"}
    assert all(i.accounts[0].account_type == "taxable" and i.accounts[0].deposit > 0 for i in investors)
    assert synthetic_investors(accounts=50, seed=2020) == investors
    assert synthetic_investors(accounts=50, seed=7) != investors
    with pytest.raises(SimulationError):
        synthetic_investors(accounts=0)


def test_the_replay_of_the_crash_trades_harvests_resumes_and_leaves_the_live_book_alone(
    history_2020, funded_alice
) -> None:  # type: ignore[no-untyped-def]
    """One test, so the replays it compares are run once (the suite stays fast)."""
    # given Alice's live account, funded, and a pipeline that has never run
    live = Account.objects.get(owner=funded_alice)
    live_cash = CashMovement.objects.filter(account=live).aggregate(total=Sum("amount"))["total"]
    out = StringIO()
    # when
    for first, last in ((INVEST, INVEST), (START, END)):
        call_command(
            "simulate", "--from", first.isoformat(), "--to", last.isoformat(), "--accounts", str(ACCOUNTS),
            "--auto-approve", "--book", "sim-whole", stdout=out,
        )  # fmt: skip
    # then: a counted line per market date and a summary
    text = out.getvalue()
    assert "[1/1] 2020-01-17: recommendations cash 5; approved 5" in text and "[5/5] 2020-02-28:" in text
    assert "losses harvested" in text and "turnover" in text and "tracking to target" in text
    book = Account.objects.filter(book="sim-whole")
    assert book.count() == ACCOUNTS
    # trades happened, every one at the close of its recommendation's own date (never the latest stored close)
    fills = Fill.objects.filter(order__account__book="sim-whole").select_related("order__recommendation")
    assert fills.count() > 0
    assert all(f.market_date == f.order.recommendation.market_date for f in fills)
    assert all(f.price == Price.objects.get(asset_id=f.order.asset_id, date=f.market_date).close for f in fills)
    # the crash harvested losses, in taxable accounts only, with substitutes bought
    harvests = RealizedGain.objects.filter(account__book="sim-whole", harvest=True)
    assert harvests.filter(gain__lt=0).exists()
    assert set(harvests.values_list("account__account_type", flat=True)) == {"taxable"}
    assert min(harvests.values_list("sold_on", flat=True)) >= date(2020, 2, 24)
    # every decision was the assigned advisor's, through the real service, audited; nothing is left open
    advisor = book_advisor("sim-whole")
    assert advisor is not None
    approvals = AuditEvent.objects.filter(action="recommendation.approved", actor=advisor)
    executed = Recommendation.objects.filter(account__book="sim-whole", status=RecommendationStatus.EXECUTED)
    assert approvals.count() == executed.count() > ACCOUNTS
    assert not Recommendation.objects.filter(
        account__book="sim-whole", status__in=(RecommendationStatus.PENDING, RecommendationStatus.APPROVED)
    ).exists()
    # no look-ahead: each date's model portfolios were estimated from prices up to that date
    for run in PipelineRun.objects.filter(book="sim-whole").select_related("optimization_run"):
        assert run.optimization_run.as_of == run.market_date
        assert run.optimization_run.estimates["window_end"] == run.market_date.isoformat()
    # the live book: no run, no recommendation, its cash as it was
    assert not PipelineRun.objects.filter(book=LIVE_BOOK).exists()
    assert not Recommendation.objects.filter(account=live).exists()
    assert CashMovement.objects.filter(account=live).aggregate(total=Sum("amount"))["total"] == live_cash

    whole = summary("sim-whole")
    # and: the summary is the database's
    fills = Fill.objects.filter(order__account__book="sim-whole")
    assert whole.days == 6 and whole.accounts == ACCOUNTS and whole.trades == fills.count()
    assert whole.traded_value == fills.aggregate(total=Sum("gross_amount"))["total"] == whole.buys + whole.sells
    assert whole.turnover == (whole.traded_value / whole.average_value).quantize(Decimal("0.0001"))
    harvest_losses = RealizedGain.objects.filter(account__book="sim-whole", harvest=True, gain__lt=0)
    assert whole.harvested_losses == harvest_losses.aggregate(total=Sum("gain"))["total"] < 0
    assert whole.harvest_trades == fills.filter(order__trade__purpose="harvest").count() > 0
    gains = RealizedGain.objects.filter(account__book="sim-whole")
    assert whole.realized_short + whole.realized_long == gains.aggregate(total=Sum("gain"))["total"]
    assert whole.deposits == sum(sum(a.deposit for a in i.accounts) for i in synthetic_investors(accounts=ACCOUNTS))
    assert 0 < whole.drift_mean <= whole.drift_max < 1
    assert [m.month for m in whole.months] == ["2020-01", "2020-02"] and whole.months[-1].value_end == whole.final_value

    # when: the same replay, interrupted after 25 February and again in the middle of 26 February (its
    # pipeline ran, no decision was taken), then run to the end
    replay("sim-resumed", date_from=INVEST, date_to=INVEST)
    replay("sim-resumed", date_to=date(2020, 2, 25))
    pipeline_run(market_date=date(2020, 2, 26), book="sim-resumed")
    days: list[object] = []
    replay("sim-resumed", days=days)
    # then: the settled dates were skipped, the interrupted one finished, and the result is the same
    assert [d.skipped for d in days] == [True] * 2 + [False] * 3  # type: ignore[attr-defined]
    assert dataclasses.replace(summary("sim-resumed"), book="sim-whole") == whole

    # and: the command printed the same numbers
    assert f"losses harvested    ${-whole.harvested_losses:,.2f} in {whole.harvest_trades} harvest sells" in text

    # and: running a finished replay again changes nothing and reports the same summary
    events = AuditEvent.objects.count()
    replay("sim-whole")
    assert summary("sim-whole") == whole
    assert AuditEvent.objects.count() == events


def test_a_book_cannot_be_the_live_one_or_change_size(history_2020) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SimulationError):
        simulation_book_create(book=LIVE_BOOK, accounts=3)
    simulation_book_create(book="sim-size", accounts=3)
    simulation_book_create(book="sim-size", accounts=3)  # idempotent
    assert Account.objects.filter(book="sim-size").count() == 3
    with pytest.raises(SimulationError, match="already holds 3 accounts"):
        simulation_book_create(book="sim-size", accounts=2)
    pipeline_run(market_date=INVEST, book="sim-size")
    with pytest.raises(SimulationError, match="already holds 3 accounts"):
        simulation_book_create(book="sim-size", accounts=4)  # a replayed book does not grow
    assert Account.objects.filter(book="sim-size").count() == 3
    assert not Account.objects.filter(book=LIVE_BOOK).exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2020-03-01", "--to", "2020-02-01"], "--to 2020-02-01 is before --from 2020-03-01"),
        (["--from", "1990-01-01", "--to", "1990-12-31"], "No prices between 1990-01-01 and 1990-12-31"),
        (["--from", "2020-02-30", "--to", "2020-03-01"], "is not a date"),
        (["--from", "2020-02-03", "--to", "2020-02-07", "--accounts", "0"], "at least 1"),
        (["--from", "2026-07-27", "--to", "2026-07-31", "--book", "live"], "The live book is not simulated"),
    ],
)
def test_the_command_refuses_bad_input_and_writes_nothing(market_data, arguments, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=message):
        call_command("simulate", *arguments, stdout=StringIO())
    assert not Account.objects.exists() and not PipelineRun.objects.exists()


def test_a_replayed_approval_checks_the_wash_sale_window_of_the_replayed_day(history_2020, funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    # given Alice sold SPY at a loss on 2020-03-09, and a recommendation of 2020-03-16 buys it back
    account = Account.objects.get(owner=funded_alice)
    trade(account, carol, date(2020, 2, 3), ("buy", "SPY", "10"))
    trade(account, carol, date(2020, 3, 9), ("sell", "SPY", "10"))
    assert RealizedGain.objects.get(account=account).gain < 0
    rec = recommend(account, date(2020, 3, 16), [("buy", "SPY", "1")])
    # when the simulation approves it as of the replayed day, then the loss of a week before is seen
    with pytest.raises(InvalidStateError, match="wash"):
        recommendation_approve(recommendation_id=rec.pk, advisor=carol, as_of=date(2020, 3, 16))
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.PENDING and not rec.orders.exists()

"""The chunked nightly pipeline on the database: failures by account and by chunk, retries, resuming a date,
idempotency, one run per (book, date) at a time, and what a run reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection

from compliance.models import AuditEvent, Finding
from portfolios import rebalancer as engine
from portfolios.models import (
    Account,
    CashMovement,
    CashMovementKind,
    ChunkStatus,
    PipelineChunk,
    PipelineRun,
    Price,
    Recommendation,
    RecommendationStatus,
    RunStatus,
    Trade,
    WithdrawalRequest,
    WithdrawalStatus,
)
from portfolios.selectors import market_date_latest
from portfolios.services import pipeline_chunk
from portfolios.services.pipeline import PIPELINE_LOCK_KEY, PipelineBusyError, _lock_key, pipeline_run
from portfolios.services.pipeline_chunk import pipeline_chunk_process
from tests.conftest import on_postgres
from tests.factories import BALANCED_ANSWERS, InvestorFactory

pytestmark = pytest.mark.django_db


def funded(investor: Any, amount: str = "50000.00") -> Account:
    """A balanced investor with ``amount`` of cash in a new taxable account."""
    from portfolios.services.accounts import account_deposit, account_open
    from profiling.services import profile_submit

    profile_submit(investor=investor, answers=BALANCED_ANSWERS)
    account = account_open(owner=investor)
    account_deposit(account=account, amount=Decimal(amount), actor=investor)
    return account


def chunk_size(settings: Any, size: int) -> None:
    settings.ADVISOR = {**settings.ADVISOR, "PIPELINE_CHUNK_SIZE": size}


def fault_in_plan(monkeypatch: pytest.MonkeyPatch, account_id: int, error: Exception, times: int = 1000) -> list[int]:
    """The engine raises ``error`` (at most ``times`` times) when it plans a chunk holding ``account_id``: a
    fault of the whole chunk (a lost connection, a worker out of memory). Returns the list of failed calls."""
    real: Callable[..., engine.Plan] = engine.rebalance_plan
    failed: list[int] = []

    def plan(universe: Any, targets: Any, book: engine.BookArrays, *args: Any, **kwargs: Any) -> engine.Plan:
        if account_id in book.account_id.tolist() and len(failed) < times:
            failed.append(account_id)
            raise error
        return real(universe, targets, book, *args, **kwargs)

    monkeypatch.setattr(engine, "rebalance_plan", plan)
    return failed


def written() -> dict[str, int]:
    """What the pipeline writes for investors, counted."""
    return {
        "recommendations": Recommendation.objects.count(),
        "trades": Trade.objects.count(),
        "findings": Finding.objects.count(),
        "audit_events": AuditEvent.objects.count(),
        "cash_movements": CashMovement.objects.count(),
    }


def chunk_of(run: PipelineRun, account: Account) -> PipelineChunk:
    return run.chunks.get(first_owner_id__lte=account.owner_id, last_owner_id__gte=account.owner_id)


# 1. One bad account fails alone --------------------------------------------------------------------------------


def test_accounts_with_bad_data_fail_alone_named_and_the_others_get_their_recommendations(funded_alice, bob) -> None:  # type: ignore[no-untyped-def]
    # given: three investors in one chunk; Bob's lot method is not one the broker knows (a bad import), and Frank
    # has a withdrawal the ledger shows as paid but whose request was left pending (paying it again is refused)
    alice_account = funded_alice.accounts.get()
    bob_account = funded(bob)
    Account.objects.filter(pk=bob_account.pk).update(lot_method="lifo")
    frank = InvestorFactory(email="frank@example.com", full_name="Frank Investor")
    frank_account = funded(frank)
    withdrawal = WithdrawalRequest.objects.create(account=frank_account, amount=Decimal("1000.00"), requested_by=frank)
    CashMovement.objects.create(
        account=frank_account,
        kind=CashMovementKind.WITHDRAWAL,
        amount=Decimal("-1000.00"),
        withdrawal=withdrawal,
        description="Withdrawal",
    )
    movements = CashMovement.objects.count()
    # when
    run = pipeline_run()
    # then: the chunk finished; each bad account is named with its reason; Alice has her recommendation
    chunk = run.chunks.get()
    assert chunk.status == ChunkStatus.SUCCEEDED and chunk.error == ""
    reasons = {f["account"]: f["error"] for f in chunk.failures}
    assert set(reasons) == {bob_account.pk, frank_account.pk}
    assert reasons[bob_account.pk] == "unknown lot method 'lifo' (one of tax_min, hifo, fifo expected)"
    assert str(reasons[frank_account.pk]).startswith("paying its pending withdrawals: IntegrityError")
    assert list(Recommendation.objects.values_list("account_id", flat=True)) == [alice_account.pk]
    # the failed payment left nothing behind
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PENDING and CashMovement.objects.count() == movements
    # the run is not reported successful: it counts and names the failures
    assert run.status == RunStatus.FAILED
    assert run.counts["failures"] == 2 and run.counts["accounts_seen"] == 3 and run.counts["recommendations"] == 1
    assert f"account {bob_account.pk} ({bob_account.name}): unknown lot method 'lifo'" in run.error
    assert f"account {frank_account.pk} ({frank_account.name}): paying its pending withdrawals" in run.error
    finished = AuditEvent.objects.get(action="pipeline.finished")
    assert finished.payload["failures"] == 2 and finished.payload["status"] == RunStatus.FAILED


def test_a_held_fund_without_a_recent_price_fails_its_account_in_its_own_chunk(  # type: ignore[no-untyped-def]
    funded_alice, bob, carol, erin, settings
) -> None:
    from advisor.services import investor_assign_advisor
    from portfolios.models import Asset
    from tests.services.trading import prices_set, trade

    # given: one investor per chunk; Bob holds a fund whose last close is three weeks old (delisted)
    chunk_size(settings, 1)
    today = market_date_latest()
    bought_on = today - timedelta(days=21)
    us_stocks = Asset.objects.get(ticker="SPY").asset_class
    Asset.objects.create(ticker="GONE", name="A delisted fund", asset_class=us_stocks, tracks_index="gone")
    prices_set(bought_on, {"GONE": "20.00"})
    investor_assign_advisor(investor=bob, advisor=carol, actor=erin)
    bob_account = funded(bob)
    trade(bob_account, carol, bought_on, ("buy", "GONE", "10"))
    # when
    run = pipeline_run(market_date=today)
    # then
    alice_chunk, bob_chunk = chunk_of(run, funded_alice.accounts.get()), chunk_of(run, bob_account)
    assert alice_chunk != bob_chunk
    assert alice_chunk.failures == [] and alice_chunk.counts["recommendations"] == 1
    assert bob_chunk.status == ChunkStatus.SUCCEEDED
    assert bob_chunk.failures == [
        {
            "account": bob_account.pk,
            "name": bob_account.name,
            "error": f"no usable price on {today} for GONE (latest close {bought_on})",
        }
    ]
    assert not Recommendation.objects.filter(account=bob_account, pipeline_run=run).exists()
    assert run.status == RunStatus.FAILED and run.counts["failures"] == 1 and run.counts["chunks"] == 2
    assert any("GONE's latest close" in note for note in run.notes)


def test_a_lost_connection_while_paying_a_withdrawal_fails_the_chunk_for_a_retry_not_the_account(  # type: ignore[no-untyped-def]
    funded_alice, monkeypatch
) -> None:
    from portfolios.services import cashflows

    # given: a withdrawal the cash covers, and the database connection drops while it is paid
    account = funded_alice.accounts.get()
    WithdrawalRequest.objects.create(account=account, amount=Decimal("500.00"), requested_by=funded_alice)

    def settle(**kwargs: Any) -> list[WithdrawalRequest]:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(cashflows, "withdrawals_settle", settle)
    # when
    run = pipeline_run()
    # then: a transient fault is the chunk's (its task retries it), not a permanent failure of Alice's account
    chunk = run.chunks.get()
    assert chunk.status == ChunkStatus.FAILED and chunk.failures == []
    assert chunk.error == "OperationalError: server closed the connection unexpectedly"
    assert run.status == RunStatus.FAILED and not Recommendation.objects.exists()


# 2. A failed chunk is reported, retried, and finished by running the date again ---------------------------------


def test_a_chunk_that_fails_as_a_whole_is_reported_and_running_the_date_again_finishes_it(  # type: ignore[no-untyped-def]
    funded_alice, bob, settings, monkeypatch
) -> None:
    # given: Alice and Bob in two chunks; Bob's chunk fails as a whole
    chunk_size(settings, 1)
    bob_account = funded(bob)
    fault_in_plan(monkeypatch, bob_account.pk, RuntimeError("worker ran out of memory"))
    # when
    run = pipeline_run()
    # then: Alice's chunk went on; Bob's is failed with its error; the run is failed, naming the chunk
    bob_chunk = chunk_of(run, bob_account)
    assert bob_chunk.status == ChunkStatus.FAILED and bob_chunk.attempts == 1
    assert bob_chunk.error == "RuntimeError: worker ran out of memory"
    assert chunk_of(run, funded_alice.accounts.get()).status == ChunkStatus.SUCCEEDED
    assert run.status == RunStatus.FAILED and run.counts["failures"] == 1
    assert run.error == f"chunk {bob_chunk.index} (1 accounts): RuntimeError: worker ran out of memory"
    assert not Recommendation.objects.filter(account=bob_account).exists()
    alice_recommendation = Recommendation.objects.get()
    before = written()

    # when: the cause is fixed and the date run again
    monkeypatch.undo()
    again = pipeline_run(market_date=run.market_date)
    # then: Bob is processed, Alice is not proposed twice, and the run succeeds
    assert again.pk == run.pk and again.status == RunStatus.SUCCEEDED and again.error == ""
    assert again.counts["failures"] == 0 and again.counts["already_recommended"] == 1
    assert all(chunk.status == ChunkStatus.SUCCEEDED for chunk in again.chunks.all())
    assert Recommendation.objects.filter(account=bob_account, pipeline_run=run).count() == 1
    assert Recommendation.objects.exclude(account=bob_account).get() == alice_recommendation
    bob_recommendation = Recommendation.objects.get(account=bob_account)
    after = written()
    assert after["recommendations"] == before["recommendations"] + 1
    assert after["trades"] == before["trades"] + bob_recommendation.trades.count()
    assert AuditEvent.objects.filter(action="recommendation.created").count() == 2
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 2  # the failed finish, then this one


def test_a_chunk_task_retries_a_lost_connection_and_records_a_permanent_failure_then_the_date_resumes(  # type: ignore[no-untyped-def]
    funded_alice, bob, settings, monkeypatch
) -> None:
    from portfolios.tasks import pipeline_chunk

    # given: three investors in three chunks, prepared for the workers (the dispatch is never delivered here)
    chunk_size(settings, 1)
    bob_account = funded(bob)
    frank = InvestorFactory(email="frank@example.com", full_name="Frank Investor")
    frank_account = funded(frank)
    run = pipeline_run(dispatch="celery")
    assert run.status == RunStatus.RUNNING and run.stage == "accounts" and run.chunks_total == 3
    alice_chunk = chunk_of(run, funded_alice.accounts.get())
    bob_chunk, frank_chunk = chunk_of(run, bob_account), chunk_of(run, frank_account)

    # when: Alice's chunk loses its database connection twice, then goes through
    failed = fault_in_plan(monkeypatch, funded_alice.accounts.get().pk, OperationalError("connection lost"), times=2)
    result = pipeline_chunk.apply(args=(alice_chunk.pk,))
    # then: retried until it succeeded
    assert result.successful() and failed == [funded_alice.accounts.get().pk] * 2
    alice_chunk.refresh_from_db()
    assert alice_chunk.status == ChunkStatus.SUCCEEDED and alice_chunk.counts["recommendations"] == 1

    # when: Bob's chunk fails with a permanent error
    monkeypatch.undo()
    fault_in_plan(monkeypatch, bob_account.pk, ValueError("corrupt plan"))
    result = pipeline_chunk.apply(args=(bob_chunk.pk,))
    # then: the task fails, the chunk is recorded failed with its error, and the run (one chunk still lost) is
    # neither finished nor successful
    assert result.failed() and isinstance(result.result, ValueError)
    bob_chunk.refresh_from_db()
    assert bob_chunk.status == ChunkStatus.FAILED and bob_chunk.error == "ValueError: corrupt plan"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.chunks_finished == 2
    assert frank_chunk.status == ChunkStatus.PENDING

    # when: the operator runs the date again once the cause is fixed
    monkeypatch.undo()
    out = StringIO()
    call_command("run_pipeline", "--date", run.market_date.isoformat(), stdout=out)
    # then: the failed and the lost chunk are processed here, and the run finishes successfully
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.chunks_finished == 3 and run.counts["failures"] == 0
    assert sorted(run.chunks.values_list("status", flat=True)) == [ChunkStatus.SUCCEEDED] * 3
    assert run.counts["recommendations"] == 3 and Recommendation.objects.count() == 3
    assert f"pipeline {run.market_date}: succeeded" in out.getvalue()
    assert out.getvalue().count("  chunk ") == 2  # the two unfinished chunks, not Alice's again
    assert AuditEvent.objects.filter(action="recommendation.created").count() == 3


# 3. Idempotency -------------------------------------------------------------------------------------------------


def test_a_chunk_delivered_twice_and_a_date_run_again_write_nothing_twice(funded_alice, bob) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.cashflows import recurring_deposit_create

    # given: Alice has a weekly deposit due on the market date; the run is prepared for the workers
    today = market_date_latest()
    alice_account = funded_alice.accounts.get()
    recurring_deposit_create(
        account=alice_account, amount="500", frequency="weekly", start_date=today, actor=funded_alice
    )
    funded(bob)
    run = pipeline_run(market_date=today, dispatch="celery")
    chunk = run.chunks.get()
    # when: the chunk is delivered twice
    first = pipeline_chunk_process(chunk_id=chunk.pk)
    once = written()
    second = pipeline_chunk_process(chunk_id=chunk.pk)
    # then: the second delivery finds it done and writes nothing
    assert first.status == second.status == ChunkStatus.SUCCEEDED
    assert PipelineChunk.objects.get(pk=chunk.pk).attempts == 1
    assert written() == once
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.counts["recommendations"] == 2
    assert run.counts["recurring_deposits"] == 1
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 1

    # when: the finished date is run again, then scanned again
    assert pipeline_run(market_date=today).pk == run.pk
    assert written() == once
    rerun = pipeline_run(market_date=today, rerun=True)
    # then: no second deposit, recommendation, trade or event; only the run's own finish is recorded again
    assert rerun.status == RunStatus.SUCCEEDED and rerun.counts["already_recommended"] == 2
    assert "recurring_deposits" not in rerun.counts and "recommendations" not in rerun.counts
    assert written() == {**once, "audit_events": once["audit_events"] + 1}
    assert CashMovement.objects.filter(account=alice_account, recurring_deposit__isnull=False).count() == 1
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 2


# 4. One pipeline per (book, date) at a time -------------------------------------------------------------------


def test_a_second_pipeline_for_a_date_being_prepared_elsewhere_is_refused(funded_alice) -> None:  # type: ignore[no-untyped-def]
    if not on_postgres():
        pytest.skip("the lock is a Postgres advisory lock (SQLite's IMMEDIATE transactions serialize writers)")
    import psycopg

    from portfolios.tasks import nightly_pipeline

    today = market_date_latest()
    params = connection.settings_dict
    # given: another process prepares the date (it holds the date's lock on its own connection)
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    ) as other:
        key = (PIPELINE_LOCK_KEY >> 32, _lock_key("live", today))
        other.execute("SELECT pg_advisory_lock(%s, %s)", key)
        # when / then: a second run is refused at once (it does not wait), and writes nothing
        with pytest.raises(PipelineBusyError, match=f"A pipeline for live {today} is already running"):
            pipeline_run(market_date=today)
        assert not PipelineRun.objects.exists() and not Recommendation.objects.exists()
        # the scheduled task reports it skipped rather than failing (beat starts it again the next night)
        assert nightly_pipeline.apply(args=(today.isoformat(),)).get() == {
            "skipped": f"A pipeline for live {today} is already running.",
            "resumed": [],
        }
        # another date, or another book, is not held up
        other_day = Price.objects.filter(date__lt=today).latest("date").date
        assert pipeline_run(market_date=other_day).status == RunStatus.SUCCEEDED
        other.execute("SELECT pg_advisory_unlock(%s, %s)", key)
    # when the other process is done, the date runs
    assert pipeline_run(market_date=today).status == RunStatus.SUCCEEDED


# 5. What a run reports ------------------------------------------------------------------------------------------


def test_a_run_counts_accounts_in_band_recommendations_by_trigger_failures_and_times_each_stage(  # type: ignore[no-untyped-def]
    funded_alice, bob, carol
) -> None:
    from portfolios.services.recommendations import recommendation_approve, recommendation_execute

    # given: Alice was invested a few market days ago; Bob has only cash
    today = market_date_latest()
    earlier: date = list(Price.objects.filter(date__lt=today).dates("date", "day", order="DESC")[:3])[-1]
    pipeline_run(market_date=earlier)
    first = Recommendation.objects.get()
    recommendation_approve(recommendation_id=first.pk, advisor=carol)
    recommendation_execute(recommendation_id=first.pk, market_date=earlier)
    assert Recommendation.objects.get().status == RecommendationStatus.EXECUTED
    funded(bob)
    # when
    run = pipeline_run(market_date=today)
    # then
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts == {
        "accounts_seen": 2,
        "chunks": 1,
        "failures": 0,
        "in_band": 1,
        "recommendations": 1,
        "recommendations_invest_cash": 1,
        # by trigger: one recommendation may have several (all cash is also every class under its target)
        "trigger_cash": 1,
        "trigger_drift": 1,
    }
    bob_recommendation = Recommendation.objects.get(account__owner=bob)
    assert {t["type"] for t in bob_recommendation.triggers} == {"cash", "drift"}
    chunk = run.chunks.get()
    assert chunk.counts["trigger_cash"] == 1 and chunk.failures == []
    stages = ("read", "targets", "plan", "exact", "write", "audit", "total")
    assert set(chunk.timings) == {f"{stage}_seconds" for stage in stages}
    assert set(run.timings) == {
        "validate_seconds",
        "deposits_seconds",
        "optimize_seconds",
        "chunking_seconds",
        *(f"chunks_{stage}_seconds" for stage in stages),
    }
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in run.timings.values())


# The audit chain's lock is taken at the end of a chunk --------------------------------------------------------


def audit_lock_held() -> bool:
    """Whether this connection holds the audit chain's lock (taken by every append to the chain)."""
    from compliance.audit import AUDIT_CHAIN_LOCK_KEY

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1 AND granted)",
            [AUDIT_CHAIN_LOCK_KEY >> 32, AUDIT_CHAIN_LOCK_KEY & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)  # committed set-up: the test's own transaction would hold the lock
def test_a_chunk_appends_its_audit_events_at_its_end_so_parallel_chunks_do_not_wait_for_each_other(  # type: ignore[no-untyped-def]
    funded_alice, monkeypatch
) -> None:
    from compliance.audit import audit_verify

    if not on_postgres():
        pytest.skip("the audit chain's lock is a Postgres advisory lock")
    # given: a withdrawal that waited for cash, covered now (the chunk pays it), and no personal target yet
    account = funded_alice.accounts.get()
    withdrawal = WithdrawalRequest.objects.create(account=account, amount=Decimal("500.00"), requested_by=funded_alice)
    appends: list[tuple[bool, list[str]]] = []  # (lock held before it, actions) per append by the chunk
    real = pipeline_chunk.audit_record_many

    def append(events: Any, **kwargs: Any) -> int:
        appends.append((audit_lock_held(), [e.action for e in events]))
        return real(events, **kwargs)

    monkeypatch.setattr(pipeline_chunk, "audit_record_many", append)
    # when
    run = pipeline_run()
    # then: the withdrawal was paid, the targets built and the recommendation written and checked before the
    # chunk took the lock, once, at its end, for all of its events
    assert appends == [
        (False, ["account.withdrawal", "personal_targets.built", "recommendation.created", "recommendation.checked"])
    ]
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.COMPLETED and run.status == RunStatus.SUCCEEDED
    # the same events as ever, in the order of the changes, committed with the chunk, and the chain intact
    recommendation = Recommendation.objects.get()
    events = list(AuditEvent.objects.order_by("id").values_list("action", "object_id"))
    assert events[-5:] == [
        ("account.withdrawal", str(account.pk)),
        ("personal_targets.built", str(run.optimization_run_id)),
        ("recommendation.created", str(recommendation.pk)),
        ("recommendation.checked", str(recommendation.pk)),
        ("pipeline.finished", str(run.pk)),
    ]
    assert audit_verify()[1] is None


def test_only_exclusions_excuse_a_target_below_its_band() -> None:
    from portfolios.models import PersonalTarget
    from portfolios.services.pipeline_chunk import investor_constraints

    def row(kind: str, label: str, assets: list[str]) -> dict[str, object]:
        return {"kind": kind, "label": label, "assets": assets, "expected_return_cost": None, "volatility_cost": None}

    target = PersonalTarget(
        binding=[
            row("exclusion", "Your exclusion of tobacco", ["VTI", "VEA"]),
            row("class_maximum", "Commodities at most 10%", ["DBC"]),
            row("asset_maximum", "At most 35% per fund", ["AGG"]),
        ]
    )
    assert investor_constraints(target) == ("Your exclusion of tobacco removes VTI and VEA.",)
    assert investor_constraints(PersonalTarget(binding=[row("class_maximum", "Commodities", ["DBC"])])) == ()
    assert investor_constraints(None) == ()

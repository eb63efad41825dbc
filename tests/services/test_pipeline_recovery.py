"""Recovering a pipeline date after a crash: a prepare left running, a finish that never ran, a resume racing with
a finishing chunk, the next night resuming an unfinished run, approved executions whose task was lost."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from compliance.models import AuditEvent
from portfolios.models import (
    LIVE_BOOK,
    ChunkStatus,
    PipelineChunk,
    PipelineRun,
    Recommendation,
    RecommendationStatus,
    RunStatus,
)
from portfolios.selectors import market_date_latest
from portfolios.services.pipeline import (
    PIPELINE_LOCK_KEY,
    REQUEUE_AFTER,
    PipelineBusyError,
    _claim,
    _lock_key,
    _reopen_chunks,
    _requeue_approved,
    pipeline_finish,
    pipeline_resume_unfinished,
    pipeline_run,
)
from portfolios.services.recommendations import recommendation_approve

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the advisory lock is Postgres's")


def other_session() -> psycopg.Connection:
    """A second session of the test database, as another process would have (autocommit)."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        autocommit=True,
    )


def crashed_prepare(market_date):  # type: ignore[no-untyped-def]
    """The row a process leaves when it dies while preparing: running, in prepare, started a minute ago."""
    return PipelineRun.objects.create(
        market_date=market_date, status=RunStatus.RUNNING, stage="prepare"
    )  # started_at: now


@postgres_only
def test_a_prepare_left_running_by_a_dead_process_is_reclaimed_at_once(funded_alice) -> None:  # type: ignore[no-untyped-def]
    market_date = market_date_latest()
    crashed = crashed_prepare(market_date)
    # when: the date is run again a moment later (the advisory lock is free: its holder is gone)
    run = pipeline_run(market_date=market_date)
    # then: no two-hour wait
    assert run.pk == crashed.pk and run.status == RunStatus.SUCCEEDED
    assert Recommendation.objects.filter(pipeline_run=run).count() == 1


@postgres_only
def test_a_prepare_whose_process_is_alive_is_busy(funded_alice) -> None:  # type: ignore[no-untyped-def]
    market_date = market_date_latest()
    crashed_prepare(market_date)
    with other_session() as preparer:  # a live preparer holds the date's lock
        preparer.execute(
            "SELECT pg_advisory_lock(%s, %s)", [PIPELINE_LOCK_KEY >> 32, _lock_key(LIVE_BOOK, market_date)]
        )
        with pytest.raises(PipelineBusyError, match="already running"):
            pipeline_run(market_date=market_date)
    assert not Recommendation.objects.exists()
    assert PipelineRun.objects.get(market_date=market_date).stage == "prepare"


def test_without_the_lock_only_a_stale_prepare_is_reclaimed(funded_alice) -> None:  # type: ignore[no-untyped-def]
    """SQLite has no advisory lock: a run preparing for less than STALE_AFTER is taken to be alive."""
    market_date = market_date_latest()
    crashed = crashed_prepare(market_date)
    with pytest.raises(PipelineBusyError, match="already running"):
        _claim(LIVE_BOOK, market_date, rerun=False, locked=False)
    PipelineRun.objects.filter(pk=crashed.pk).update(started_at=timezone.now() - timedelta(hours=3))
    run, action = _claim(LIVE_BOOK, market_date, rerun=False, locked=False)
    assert (run.pk, action, run.status) == (crashed.pk, "prepare", RunStatus.RUNNING)


def test_a_finish_that_never_ran_is_run_by_the_rerun(funded_alice) -> None:  # type: ignore[no-untyped-def]
    """The last chunk committed (and counted itself) but its process died before running the finish."""
    market_date = market_date_latest()
    run = PipelineRun.objects.create(
        market_date=market_date, status=RunStatus.RUNNING, stage="accounts", chunks_total=2, chunks_finished=2
    )
    for index in range(2):
        PipelineChunk.objects.create(
            run=run,
            index=index,
            first_owner_id=index,
            last_owner_id=index,
            status=ChunkStatus.SUCCEEDED,
            counts={"accounts_seen": 3, "recommendations": 2},
        )
    # when
    again = pipeline_run(market_date=market_date)
    # then: finished once, with the chunks' counts
    assert again.pk == run.pk and again.status == RunStatus.SUCCEEDED and again.stage == "finished"
    assert again.counts["accounts_seen"] == 6 and again.counts["recommendations"] == 4
    assert pipeline_run(market_date=market_date).status == RunStatus.SUCCEEDED
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_chunk_finishing_while_the_run_is_resumed_is_counted_once() -> None:
    """The resume recounts the succeeded chunks under the run's row lock: a chunk committing meanwhile (its latch
    holds that row) is counted by the recount or by its latch, not lost (and not counted twice)."""
    run = PipelineRun.objects.create(
        market_date="2026-07-31", status=RunStatus.RUNNING, stage="accounts", chunks_total=2, chunks_finished=1
    )
    PipelineChunk.objects.create(run=run, index=0, first_owner_id=1, last_owner_id=1, status=ChunkStatus.SUCCEEDED)
    last = PipelineChunk.objects.create(run=run, index=1, first_owner_id=2, last_owner_id=2)
    with other_session() as worker:
        # The last chunk's transaction on a worker: marked succeeded, counted in the latch, not yet committed.
        with worker.transaction():
            worker.execute("UPDATE portfolios_pipelinechunk SET status = 'succeeded' WHERE id = %s", [last.pk])
            worker.execute(
                "UPDATE portfolios_pipelinerun SET chunks_finished = chunks_finished + 1 WHERE id = %s", [run.pk]
            )
            resume = threading.Thread(target=_resume_in_thread, args=(run,))
            resume.start()
            _wait_until_blocked_by(worker.info.backend_pid)
        resume.join(timeout=30)
    assert not resume.is_alive()
    run.refresh_from_db()
    assert (run.chunks_finished, run.chunks_total, run.status) == (2, 2, RunStatus.RUNNING)
    # The latch's winner (the worker) finishes the run; a second finish (the resume's) changes nothing.
    assert pipeline_finish(run_id=run.pk).status == RunStatus.SUCCEEDED
    assert pipeline_finish(run_id=run.pk).status == RunStatus.SUCCEEDED
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 1


def _resume_in_thread(run: PipelineRun) -> None:
    try:
        _reopen_chunks(run)
    finally:
        connection.close()


def _wait_until_blocked_by(pid: int) -> None:
    import time

    deadline = time.monotonic() + 30
    with other_session() as observer:
        while time.monotonic() < deadline:
            blocked = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [pid]
            ).fetchone()
            if blocked and blocked[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the resume never waited for the finishing chunk")


def test_the_next_night_resumes_a_run_a_dead_worker_left_unfinished(funded_alice) -> None:  # type: ignore[no-untyped-def]
    market_date = market_date_latest()
    # Prepared and dispatched to workers; the workers died with its chunks (inside this test's transaction the
    # dispatch, an on-commit callback, never happens).
    run = pipeline_run(market_date=market_date, dispatch="celery")
    assert run.status == RunStatus.RUNNING and run.chunks.filter(status=ChunkStatus.PENDING).exists()
    # An older unfinished run on a day without prices (refused when resumed) does not stop the others.
    sunday = PipelineRun.objects.create(market_date=date(2026, 7, 26), status=RunStatus.RUNNING, stage="accounts")
    # when: the next night (a later date) first resumes what is left of earlier ones
    resumed = pipeline_resume_unfinished(before=market_date + timedelta(days=1), dispatch="inline")
    # then
    assert [r.pk for r in resumed] == [run.pk]
    sunday.refresh_from_db()
    assert sunday.status == RunStatus.FAILED and "No prices on 2026-07-26" in sunday.error
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Recommendation.objects.filter(pipeline_run=run).count() == 1
    assert pipeline_resume_unfinished(before=market_date + timedelta(days=1)) == []


def test_only_approvals_old_enough_are_requeued(funded_alice, carol, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    rec = Recommendation.objects.get()
    recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    # A fresh approval's task is most likely still queued or running: not queued again.
    with django_capture_on_commit_callbacks() as queued:
        assert _requeue_approved(LIVE_BOOK) == 0
    assert queued == []
    # Older than REQUEUE_AFTER and still approved: its task was lost.
    Recommendation.objects.filter(pk=rec.pk).update(decided_at=timezone.now() - REQUEUE_AFTER - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as queued:
        assert _requeue_approved(LIVE_BOOK) == 1
    assert len(queued) == 1
    # Executed: nothing to queue.
    Recommendation.objects.filter(pk=rec.pk).update(status=RecommendationStatus.EXECUTED)
    assert _requeue_approved(LIVE_BOOK) == 0


def test_the_nightly_task_resumes_earlier_unfinished_runs_first(funded_alice) -> None:  # type: ignore[no-untyped-def]
    from portfolios.tasks import nightly_pipeline

    market_date = market_date_latest()
    earlier = pipeline_run(market_date=market_date - timedelta(days=1), dispatch="celery")  # its workers died
    result = nightly_pipeline.apply(args=[market_date.isoformat()]).get()
    assert result["resumed"] == [earlier.pk] and result["pipeline_run"] != earlier.pk


def test_a_late_delivery_of_a_chunk_prepared_again_since_does_nothing(db) -> None:  # type: ignore[no-untyped-def]
    """Redis re-delivers an unacknowledged chunk task after its visibility timeout; the run may have been prepared
    again since, with new chunks: the old chunk's id is gone."""
    from portfolios.tasks import pipeline_chunk

    assert pipeline_chunk.apply(args=[10**9]).get() == {"chunk": 10**9, "status": "gone"}

"""The nightly pipeline, one run per (book, market date).

Stages::

    prepare (in the calling process, under the date's lock)
      validate the day's prices ──► recurring deposits due ──► model portfolios (estimate, optimize)
      ──► chunks: the book's accounts split at investor boundaries into PipelineChunk rows
    accounts (fan-out: a Celery group of chunk tasks, or in this process one chunk after another)
      each chunk, in one transaction: bulk reads ──► personal targets ──► vectorised drift, cash flows,
      harvests and trades (portfolios/rebalancer.py) ──► exact trades ──► recommendations, trades, compliance
      findings and audit events in bulk ──► chunk succeeded ──► the run's latch counts it
    finish (run by whichever chunk finishes last: the latch is a conditional update, no result backend needed)
      counts and timings summed from the chunks, approved executions re-queued, status, ``pipeline.finished``

Guarantees: one prepare per (book, date) at a time (a Postgres advisory lock, and a compare-and-set claim of the
run's status on every database); a chunk is claimed by a conditional update inside its own transaction, so a
chunk delivered twice or to two workers is processed once, and a worker killed half-way leaves it pending for
the next delivery or for ``run_pipeline --date D`` (which dispatches the pending chunks of an unfinished run
again); one recommendation per (run, account) is a database rule.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from functools import partial
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from advisor.errors import DomainError, InvalidInputError, InvalidStateError
from compliance.audit import audit_record

from ..models import (
    LIVE_BOOK,
    Account,
    ChunkStatus,
    PipelineChunk,
    PipelineRun,
    Price,
    Recommendation,
    RecommendationStatus,
    RunStatus,
)
from ..selectors import market_date_latest
from .optimization import model_portfolios_build

logger = logging.getLogger(__name__)
PIPELINE_LOCK_KEY = 0x504950454C494E45  # "PIPELINE"
# An account with one of these waits for the advisor (or the broker) before it gets another.
OPEN_STATUSES = (RecommendationStatus.PENDING, RecommendationStatus.BLOCKED, RecommendationStatus.APPROVED)
# A run still preparing after this long is taken to have crashed and may be claimed again (SQLite; on Postgres the
# advisory lock proves whether its preparer is alive, so a crashed prepare is reclaimed at once).
STALE_AFTER = timedelta(hours=2)
# An approved recommendation still not executed this long after its approval lost its execution task: the next
# pipeline finish queues it again (a younger one is most likely still in the queue or executing).
REQUEUE_AFTER = timedelta(minutes=10)
REQUEUE_LIMIT = 10_000  # per finish; any others are queued by the next one
STALE_PRICE_DAYS = 7  # a held fund whose latest close is older than this fails its accounts, named
PRICE_JUMP_WARNING = 0.25  # a one-day move larger than this is reported (not refused: markets do move)

Dispatch = Literal["inline", "celery"]
Progress = Callable[[str], None]


class PipelineBusyError(InvalidStateError):
    pass


def _lock_key(book: str, market_date: date) -> int:
    # The book's name and the date in one 32-bit key (books are few; a collision only serializes two runs).
    return (market_date.toordinal() * 31 + sum(ord(c) * (i + 1) for i, c in enumerate(book))) % (2**31)


@contextmanager
def _exclusive(book: str, market_date: date) -> Iterator[bool]:
    """One prepare per book and date at a time, across processes and hosts (a Postgres advisory lock). Yields
    whether the lock is held: then no other process is preparing this run, whatever its row says."""
    if connection.vendor != "postgresql":
        # SQLite is the single-machine demo: its IMMEDIATE transactions serialize writers.
        yield False
        return
    key = [PIPELINE_LOCK_KEY >> 32, _lock_key(book, market_date)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        if not cursor.fetchone()[0]:
            raise PipelineBusyError(f"A pipeline for {book} {market_date} is already running.")
    try:
        yield True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def _claim(book: str, market_date: date, *, rerun: bool, locked: bool) -> tuple[PipelineRun, str]:
    """The run row for the date and what this process does with it: ``prepare`` (it owns a new or re-claimed
    run), ``resume`` (the run is past its prepare stage: dispatch its unfinished chunks) or ``done``.

    ``locked``: this process holds the date's advisory lock, which a preparing process holds until it is done, so
    a run still marked as preparing was left so by a process that died: it is reclaimed at once. Without the lock
    (SQLite) only a run preparing for longer than ``STALE_AFTER`` is taken to have crashed."""
    run, created = PipelineRun.objects.get_or_create(book=book, market_date=market_date)
    if created:
        return run, "prepare"
    if run.status == RunStatus.SUCCEEDED and not rerun:
        return run, "done"
    if run.status == RunStatus.RUNNING and run.stage == "accounts":
        return run, "resume"
    if run.status == RunStatus.RUNNING and not locked and run.started_at > timezone.now() - STALE_AFTER:
        raise PipelineBusyError(f"A pipeline for {book} {market_date} is already running (started {run.started_at}).")
    claimed = PipelineRun.objects.filter(pk=run.pk, status=run.status, started_at=run.started_at).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), error="", stage="prepare", finished_at=None
    )
    if not claimed:
        raise PipelineBusyError(f"Another process claimed the pipeline for {book} {market_date} first.")
    run.refresh_from_db()
    return run, "prepare"


def pipeline_run(
    *,
    market_date: date | None = None,
    book: str = LIVE_BOOK,
    rerun: bool = False,
    dispatch: Dispatch = "inline",
    progress: Progress | None = None,
) -> PipelineRun:
    """Run (or finish) the pipeline for a market date; calling it again for the same date changes nothing.

    ``rerun`` scans a finished date again, for accounts funded or profiled since (one recommendation per run
    and account). ``dispatch="celery"`` fans the chunks out to workers and returns while they run; ``inline``
    processes them here, reporting each through ``progress``. An unfinished run is resumed: its pending and
    failed chunks are processed (or dispatched) again.
    """
    market_date = market_date or market_date_latest()
    if market_date is None:
        raise InvalidStateError("No prices are stored: run import_prices first.")
    if not Price.objects.filter(date=market_date).exists():
        message = f"No prices on {market_date}: it is not a market date of the stored data."
        # Recorded, so that a scheduled run on a day without prices is visible rather than silently skipped.
        run, _ = PipelineRun.objects.get_or_create(book=book, market_date=market_date)
        if run.status != RunStatus.SUCCEEDED:
            PipelineRun.objects.filter(pk=run.pk).update(
                status=RunStatus.FAILED, error=message, stage="finished", finished_at=timezone.now()
            )
        raise InvalidInputError(message, fields={"date": "Choose a date with prices (the latest is the default)."})
    say = progress or (lambda message: logger.info("%s", message))
    with _exclusive(book, market_date) as locked:
        run, action = _claim(book, market_date, rerun=rerun, locked=locked)
        if action == "done":
            say(f"pipeline {book} {market_date}: already succeeded (run {run.pk}); nothing to do")
            return run
        if action == "prepare":
            try:
                _prepare(run, say=say)
            except Exception as exc:
                # Record why the run failed before letting the error reach Celery: never silently skipped.
                PipelineRun.objects.filter(pk=run.pk).update(
                    status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
                )
                raise
        else:
            _reopen_chunks(run)
    return _dispatch(run, dispatch=dispatch, say=say)


def pipeline_resume_unfinished(
    *, book: str = LIVE_BOOK, before: date, dispatch: Dispatch = "celery", progress: Progress | None = None
) -> list[PipelineRun]:
    """Resume the runs of ``book`` before ``before`` left in their accounts stage: chunks whose worker died (their
    task waits in the broker until its visibility timeout, an hour on Redis) are dispatched again, and a run whose
    last chunk finished without running the finish (its process died in between) is finished. The nightly task
    calls it, so an interrupted night is completed by the next one at the latest. A run being resumed by another
    process right now is skipped, and no refusal stops the others (or the night's own run)."""
    say = progress or (lambda message: logger.info("%s", message))
    resumed = []
    dates = PipelineRun.objects.filter(
        book=book, market_date__lt=before, status=RunStatus.RUNNING, stage="accounts"
    ).values_list("market_date", flat=True)
    for market_date in sorted(dates):
        say(f"pipeline {book} {market_date}: unfinished, resumed")
        try:
            resumed.append(pipeline_run(market_date=market_date, book=book, dispatch=dispatch, progress=progress))
        except DomainError as exc:  # busy (another process resumes it), or its prices are gone (recorded FAILED)
            say(f"pipeline {book} {market_date}: not resumed: {exc}")
    return resumed


def _prepare(run: PipelineRun, *, say: Progress) -> None:
    from compliance.parameters import parameter_sets_initialize

    from .cashflows import recurring_deposits_run
    from .recommendations import recommendations_expire

    timings: dict[str, float] = {}
    counts: Counter[str] = Counter()
    # From the first run on, the parameters in force are stored versions (changed only with four eyes).
    for version in parameter_sets_initialize():
        say(f"  {version.name} parameters stored as version 1 from the defaults and settings")

    t0 = time.perf_counter()
    notes = prices_validate(book=run.book, market_date=run.market_date)
    counts["price_warnings"] = len(notes)
    timings["validate_seconds"] = round(time.perf_counter() - t0, 4)
    for note in notes:
        say(f"  price check: {note}")

    t0 = time.perf_counter()
    counts["recurring_deposits"] = recurring_deposits_run(market_date=run.market_date, book=run.book)
    timings["deposits_seconds"] = round(time.perf_counter() - t0, 4)

    # Proposals sized at closes more than a week old are withdrawn before the accounts are scanned, so their
    # accounts are proposed afresh in this run.
    counts["recommendations_expired"] = recommendations_expire(book=run.book, market_date=run.market_date)
    if counts["recommendations_expired"]:
        say(f"  {counts['recommendations_expired']} recommendations expired (proposed at old prices)")

    t0 = time.perf_counter()
    optimization = model_portfolios_build(as_of=run.market_date)
    timings["optimize_seconds"] = round(time.perf_counter() - t0, 4)
    say(f"pipeline {run.book} {run.market_date}: model portfolios from optimization run {optimization.pk}")

    t0 = time.perf_counter()
    chunks = _chunk_bounds(run.book, size=int(settings.ADVISOR["PIPELINE_CHUNK_SIZE"]))
    with transaction.atomic():
        # A re-scan or a retried run processes every chunk again (the accounts of the book may have changed):
        # accounts already recommended in this run are skipped, one recommendation per run and account.
        run.chunks.all().delete()
        PipelineChunk.objects.bulk_create(
            [
                PipelineChunk(run=run, index=i, first_owner_id=low, last_owner_id=high, account_count=count)
                for i, (low, high, count) in enumerate(chunks)
            ]
        )
        PipelineRun.objects.filter(pk=run.pk).update(
            optimization_run=optimization,
            stage="accounts",
            chunks_total=len(chunks),
            chunks_finished=0,
            notes=notes,
            counts=dict(counts),
            timings={**timings, "chunking_seconds": round(time.perf_counter() - t0, 4)},
        )
    run.refresh_from_db()
    say(f"  {sum(c for _, _, c in chunks)} accounts in {len(chunks)} chunks")


def _chunk_bounds(book: str, *, size: int) -> list[tuple[int, int, int]]:
    """(first owner id, last owner id, accounts) of chunks of about ``size`` accounts, never splitting an owner."""
    per_owner = (
        Account.objects.filter(book=book)
        .values("owner_id")
        .annotate(n=Count("id"))
        .order_by("owner_id")
        .values_list("owner_id", "n")
    )
    chunks: list[tuple[int, int, int]] = []
    low = high = None
    count = 0
    for owner_id, n in per_owner.iterator(chunk_size=10000):
        if low is None:
            low = owner_id
        high, count = owner_id, count + n
        if count >= size:
            chunks.append((low, high, count))
            low, count = None, 0
    if low is not None and high is not None:
        chunks.append((low, high, count))
    return chunks


def _reopen_chunks(run: PipelineRun) -> None:
    """Resuming a run: failed chunks become pending again and the latch counts only the chunks that succeeded.

    Under the run's row lock: a chunk finishing meanwhile counts itself in the latch (an update of that row) either
    before the recount, which then sees it succeeded, or after it, adding one to the recount; never lost or twice.
    A run finished meanwhile (by its last chunk) is left as it is."""
    with transaction.atomic():
        locked = PipelineRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == RunStatus.RUNNING:
            PipelineChunk.objects.filter(run=run, status=ChunkStatus.FAILED).update(status=ChunkStatus.PENDING)
            done = PipelineChunk.objects.filter(run=run, status=ChunkStatus.SUCCEEDED).count()
            PipelineRun.objects.filter(pk=run.pk).update(chunks_finished=done, finished_at=None, error="")
    run.refresh_from_db()


def _dispatch(run: PipelineRun, *, dispatch: Dispatch, say: Progress) -> PipelineRun:
    from .pipeline_chunk import pipeline_chunk_process

    pending = list(
        PipelineChunk.objects.filter(run=run, status=ChunkStatus.PENDING).order_by("index").values_list("pk", "index")
    )
    if not pending:
        # Nothing left to process (an empty book, or every chunk already done): finish now.
        pipeline_finish(run_id=run.pk)
        run.refresh_from_db()
        return run
    if dispatch == "celery":
        from celery import group

        from ..tasks import pipeline_chunk

        signatures = [pipeline_chunk.s(chunk_id) for chunk_id, _ in pending]
        transaction.on_commit(lambda: group(signatures).apply_async())
        say(f"pipeline {run.book} {run.market_date}: {len(pending)} chunks dispatched to the workers")
        return run
    total = run.chunks_total
    for chunk_id, index in pending:
        try:
            chunk = pipeline_chunk_process(chunk_id=chunk_id)
        except Exception as exc:  # recorded on the chunk (the run then fails, naming it); the others go on
            logger.exception("pipeline chunk %s failed", chunk_id)
            chunk = pipeline_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")
        counts = chunk.counts
        say(
            f"  chunk {index + 1}/{total}: {chunk.account_count} accounts, "
            f"{counts.get('recommendations', 0)} recommendations, {len(chunk.failures)} failures "
            f"({chunk.status}, {chunk.timings.get('total_seconds', 0)}s)"
        )
    run.refresh_from_db()
    return run


def pipeline_finish(*, run_id: int) -> PipelineRun:
    """The last stage: sum the chunks, re-queue approved executions, settle the run's status. Runs once: the
    status moves from running under a row lock, so the latch's winner and a resumed run cannot both finish it."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return run
        chunks = list(run.chunks.all())
        counts: Counter[str] = Counter({k: v for k, v in run.counts.items() if isinstance(v, int)})
        timings: Counter[str] = Counter()
        failures: list[str] = []
        for chunk in chunks:
            counts.update({k: v for k, v in chunk.counts.items() if isinstance(v, int)})
            timings.update({f"chunks_{k}": v for k, v in chunk.timings.items()})
            failures.extend(f"account {f['account']} ({f.get('name', '')}): {f['error']}" for f in chunk.failures)
            if chunk.status != ChunkStatus.SUCCEEDED:
                failures.append(f"chunk {chunk.index} ({chunk.account_count} accounts): {chunk.error or chunk.status}")
        counts["chunks"] = len(chunks)
        counts["failures"] = len(failures)
        requeued = _requeue_approved(run.book)
        if requeued:
            counts["executions_requeued"] = requeued
        run.status = RunStatus.FAILED if failures else RunStatus.SUCCEEDED
        run.stage = "finished"
        # Zero counts are left out (a million-account run has many kinds of nothing); failures always shows.
        run.counts = {k: v for k, v in sorted(counts.items()) if v or k == "failures"}
        run.timings = {**run.timings, **{k: round(v, 4) for k, v in timings.items()}}
        run.error = "\n".join(failures[:200]) + (f"\n... and {len(failures) - 200} more" if len(failures) > 200 else "")
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "stage", "counts", "timings", "error", "finished_at"])
        audit_record(
            actor=None,
            action="pipeline.finished",
            obj=run,
            payload={
                "book": run.book,
                "market_date": run.market_date,
                "status": run.status,
                "counts": run.counts,
                "failures": len(failures),
            },
        )
    return run


def pipeline_chunk_fail(*, chunk_id: int, error: str) -> PipelineChunk:
    """Record a chunk that could not be processed (after its retries), count it in the latch, and finish the
    run if it was the last one. A chunk already finished is left as it is."""
    with transaction.atomic():
        changed = PipelineChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.FAILED, error=error[:2000], finished_at=timezone.now(), attempts=F("attempts") + 1
        )
        chunk = PipelineChunk.objects.get(pk=chunk_id)
        last = changed and latch_count(chunk.run_id)
    if last:
        pipeline_finish(run_id=chunk.run_id)
    return chunk


def latch_count(run_id: int) -> bool:
    """Count one more finished chunk; True for the chunk that finishes the run (the caller then finishes it)."""
    PipelineRun.objects.filter(pk=run_id).update(chunks_finished=F("chunks_finished") + 1)
    finished, total = PipelineRun.objects.values_list("chunks_finished", "chunks_total").get(pk=run_id)
    return bool(finished >= total)


def _requeue_approved(book: str) -> int:
    """Approved recommendations whose execution task was lost get it again (execution is idempotent): those
    approved more than ``REQUEUE_AFTER`` ago and still not executed (a younger one's task is most likely queued or
    running), at most ``REQUEUE_LIMIT`` per finish, oldest first. One still approved with some orders filled is
    one whose execution stopped half-way: it is queued too, and fills the rest."""
    from ..tasks import execute_recommendation

    waiting = list(
        Recommendation.objects.filter(
            status=RecommendationStatus.APPROVED,
            decided_at__lt=timezone.now() - REQUEUE_AFTER,
            account__book=book,
        )
        .order_by("decided_at", "pk")
        .values_list("pk", flat=True)[:REQUEUE_LIMIT]
    )
    for recommendation_id in waiting:
        transaction.on_commit(partial(execute_recommendation.delay, recommendation_id))
    return len(waiting)


def prices_validate(*, book: str, market_date: date) -> list[str]:
    """What is wrong with the day's prices, in plain words: funds whose latest close is missing or older than
    ``STALE_PRICE_DAYS`` (accounts holding them fail, named, in the chunks) and one-day moves beyond
    ``PRICE_JUMP_WARNING``. Non-positive or duplicate prices cannot be stored (constraints), so they are not
    checked again here. ``book`` is for the message only: prices are the same for every book."""
    notes: list[str] = []
    latest = dict(
        Price.objects.filter(date__lte=market_date)
        .values("asset__ticker")
        .annotate(last=Max("date"))
        .values_list("asset__ticker", "last")
    )
    for ticker, day in sorted(latest.items()):
        if (market_date - day).days > STALE_PRICE_DAYS:
            notes.append(
                f"{ticker}'s latest close is from {day}, more than {STALE_PRICE_DAYS} days before {market_date}: "
                f"accounts of {book} holding it are not traded"
            )
    today = dict(Price.objects.filter(date=market_date).values_list("asset__ticker", "close"))
    previous_day = Price.objects.filter(date__lt=market_date).order_by("-date").values_list("date", flat=True).first()
    if previous_day is not None:
        before = dict(Price.objects.filter(date=previous_day).values_list("asset__ticker", "close"))
        for ticker, close in sorted(today.items()):
            if ticker in before and before[ticker] > 0:
                move = float(close / before[ticker] - 1)
                if abs(move) > PRICE_JUMP_WARNING:
                    notes.append(f"{ticker} moved {move:+.1%} from {previous_day} to {market_date}")
    return notes

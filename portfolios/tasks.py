"""Thin Celery tasks: take ids, call one service. Safe to deliver twice."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task
from django.db import OperationalError

from .models import LIVE_BOOK
from .selectors import market_date_latest
from .services.pipeline import PipelineBusyError, pipeline_chunk_fail, pipeline_resume_unfinished, pipeline_run
from .services.recommendations import recommendation_execute

# Only a lost database connection is worth retrying; anything else is recorded and surfaced.
RETRY: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}
CHUNK_MAX_RETRIES = 5


@shared_task(name="portfolios.tasks.nightly_pipeline", **RETRY)
def nightly_pipeline(market_date: str | None = None, book: str = LIVE_BOOK) -> dict[str, object]:
    """Beat's entry point: resume earlier runs an interruption left unfinished (their pending chunks go to the
    workers again), then prepare the date's run here and fan its chunks out to the workers."""
    day = date.fromisoformat(market_date) if market_date else market_date_latest()
    resumed = [r.pk for r in pipeline_resume_unfinished(book=book, before=day)] if day else []
    try:
        run = pipeline_run(market_date=day, book=book, dispatch="celery")
    except PipelineBusyError as exc:
        return {"skipped": str(exc), "resumed": resumed}
    return {"pipeline_run": run.pk, "status": run.status, "chunks": run.chunks_total, "resumed": resumed}


@shared_task(name="portfolios.tasks.pipeline_chunk", bind=True, acks_late=True, max_retries=CHUNK_MAX_RETRIES)
def pipeline_chunk(self: Any, chunk_id: int) -> dict[str, object]:
    """One chunk of a pipeline run. A lost connection is retried with backoff; after the last retry, or on any
    other error, the chunk is recorded as failed (with the error) and counted, never silently skipped."""
    from .models import PipelineChunk
    from .services.pipeline_chunk import pipeline_chunk_process

    try:
        chunk = pipeline_chunk_process(chunk_id=chunk_id)
    except PipelineChunk.DoesNotExist:
        # A late delivery (the broker re-delivers an unacknowledged task after its visibility timeout) of a chunk
        # whose run was prepared again since, with new chunks: nothing to do.
        return {"chunk": chunk_id, "status": "gone"}
    except OperationalError as exc:
        if self.request.retries < CHUNK_MAX_RETRIES:
            raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc
        chunk = pipeline_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a permanent failure: recorded on the chunk (and counted), then re-raised
        pipeline_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")
        raise
    return {"chunk": chunk.pk, "status": chunk.status, "counts": chunk.counts}


@shared_task(name="portfolios.tasks.execute_recommendation", **RETRY)
def execute_recommendation(recommendation_id: int) -> str:
    return recommendation_execute(recommendation_id=recommendation_id).status


# Re-optimization on request (admin page, API, an approved change of the optimization parameters) -----------


@shared_task(name="portfolios.tasks.reoptimize", **RETRY)
def reoptimize(actor_id: int) -> dict[str, object]:
    """Model portfolios of the latest market date under the parameters in force, then every live account's
    personal target. A second delivery reuses the run and its targets (and records another request)."""
    from advisor.errors import DomainError
    from advisor.models import User

    from .services.optimization import ModelPortfolioError
    from .services.reoptimization import optimization_rerun

    actor = User.objects.get(pk=actor_id)
    try:
        result = optimization_rerun(actor=actor)
    except ModelPortfolioError as exc:
        # Missing prices or parameters no portfolio satisfies: retrying cannot help. From the estimation on, the
        # build has stored the failed run with its error and audit event.
        return {"failed": str(exc)}
    except DomainError as exc:
        # No prices yet, or the actor is no longer an admin: refused, not worth retrying.
        return {"refused": exc.message}
    return {
        "optimization_run": result.run.pk,
        "reused": result.reused,
        "accounts": result.accounts,
        "targets": result.targets,
        "failures": len(result.failures),
        "levels_outside_volatility_bands": sorted(result.outside_bands),
    }

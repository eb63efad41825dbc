"""Thin Celery tasks: take ids, call one service. Safe to deliver twice."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task
from django.db import OperationalError

from .services.pipeline import PipelineBusyError, pipeline_run
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


@shared_task(name="portfolios.tasks.nightly_pipeline", **RETRY)
def nightly_pipeline(market_date: str | None = None) -> dict[str, object]:
    try:
        run = pipeline_run(market_date=date.fromisoformat(market_date) if market_date else None)
    except PipelineBusyError as exc:
        return {"skipped": str(exc)}
    return {"pipeline_run": run.pk, "status": run.status, "counts": run.counts}


@shared_task(name="portfolios.tasks.execute_recommendation", **RETRY)
def execute_recommendation(recommendation_id: int) -> str:
    return recommendation_execute(recommendation_id=recommendation_id).status

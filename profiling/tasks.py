"""Thin Celery tasks of profiling: take plain arguments, call one service. Safe to deliver twice."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task
from django.db import OperationalError

RETRY: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="profiling.tasks.update_behavior_scores", **RETRY)
def update_behavior_scores(as_of: str | None = None) -> dict[str, int]:
    from .services.behaviour import behaviour_scores_update

    return behaviour_scores_update(as_of=date.fromisoformat(as_of) if as_of else None)


@shared_task(name="profiling.tasks.fit_segments", **RETRY)
def fit_segments() -> dict[str, Any]:
    from .services.segments import segments_fit

    return segments_fit()

"""Behavioural events, recorded by the product's own actions (investors never write them directly)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from advisor.models import User
from compliance.audit import audit_record

from ..models import BehaviorEvent, BehaviorEventType


def behavior_event_record(
    *,
    investor: User,
    event_type: BehaviorEventType,
    details: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> BehaviorEvent:
    with transaction.atomic():
        event = BehaviorEvent.objects.create(
            investor=investor,
            event_type=event_type,
            occurred_at=occurred_at or timezone.now(),
            details=dict(details or {}),
        )
        audit_record(
            actor=None,
            action="behavior.event_recorded",
            obj=event,
            subject_id=investor.pk,
            payload={"event_type": event_type.value, "details": event.details},
        )
    return event

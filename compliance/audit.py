"""Writing and verifying the audit log.

``audit_record`` must run inside the transaction that makes the change it
describes, so the change and its event commit or roll back together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from advisor.db import bulk_insert

from .chain import GENESIS_HASH, ChainBreak, event_hash, first_break
from .models import AuditEvent

# Any fixed 64-bit key: every writer of the chain takes the same lock.
AUDIT_CHAIN_LOCK_KEY = 0x41554449545F4C4F  # "AUDIT_LO"


class AuditOutsideTransactionError(RuntimeError):
    pass


def _hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "subject_id": event.subject_id,
        "payload": event.payload,
    }


def _plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Decimals and dates become strings, so what is stored is exactly what is hashed."""
    result: dict[str, Any] = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    return result


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    subject_id: int | None = None,
    payload: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain.

    ``actor`` is a user or ``None`` for the system; ``subject_id`` is the investor the event is about.
    """
    if not connection.in_atomic_block:
        raise AuditOutsideTransactionError("audit_record must run inside the transaction of the change")
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = obj.pk
    if connection.vendor == "postgresql":
        # Serializes writers so two transactions never chain onto the same predecessor.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
    # SQLite runs IMMEDIATE transactions (settings), which already serialize writers.
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    event = AuditEvent(
        created_at=timezone.now(),
        actor=actor,
        actor_label=str(actor) if actor is not None else "system",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        subject_id=subject_id,
        payload=_plain(payload or {}),
        prev_hash=last or GENESIS_HASH,
    )
    event.hash = event_hash(event.prev_hash, _hashed_fields(event))
    event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class PendingEvent:
    """One event for ``audit_record_many``: the same fields as ``audit_record`` takes."""

    action: str
    object_type: str
    object_id: str | int
    actor: Any = None
    subject_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


def audit_record_many(events: Sequence[PendingEvent]) -> int:
    """Append many events to the chain in one go (the nightly pipeline writes thousands per chunk).

    The same chain as ``audit_record`` makes one event at a time: the lock is taken once, the predecessor read
    once, each event hashed onto the previous one in order, and the rows inserted in that order by one
    ``bulk_insert`` (COPY on Postgres; ids follow insertion order under the lock). Must run inside the
    transaction of the changes.
    """
    if not events:
        return 0
    if not connection.in_atomic_block:
        raise AuditOutsideTransactionError("audit_record_many must run inside the transaction of the change")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
    previous = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    now = timezone.now()
    rows: list[AuditEvent] = []
    for pending in events:
        actor = pending.actor
        event = AuditEvent(
            created_at=now,
            actor=actor,
            actor_label=str(actor) if actor is not None else "system",
            action=pending.action,
            object_type=pending.object_type,
            object_id=str(pending.object_id),
            subject_id=pending.subject_id,
            payload=_plain(pending.payload),
            prev_hash=previous,
        )
        event.hash = event_hash(previous, _hashed_fields(event))
        previous = event.hash
        rows.append(event)
    # COPY on Postgres, in chain order: the ids the sequence gives follow the rows' order under the chain's lock.
    fields = ["created_at", "actor_id", "actor_label", "action", "object_type", "object_id", "subject_id", "payload"]
    fields += ["prev_hash", "hash"]
    bulk_insert(AuditEvent, fields, ([getattr(e, f) for f in fields] for e in rows))
    return len(rows)


def audit_verify() -> tuple[int, ChainBreak | None]:
    """Recompute the whole chain; return the number of events checked and the first break, if any."""
    checked = 0

    def rows() -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        nonlocal checked
        for event in AuditEvent.objects.order_by("id").iterator(chunk_size=5000):
            checked += 1
            yield event.pk, event.prev_hash, event.hash, _hashed_fields(event)

    with transaction.atomic():
        broken = first_break(rows())
    return checked, broken

"""Checking a recommendation: rules run on a plain proposal, findings are stored and audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from advisor.db import bulk_insert
from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import Role
from portfolios.universe import ASSETS

from .audit import PendingEvent, audit_record, audit_record_many
from .models import Finding, RestrictedAsset, Severity
from .rules import Proposal, RuleResult, default_rules, run_rules


def recommendation_check(*, recommendation_id: int, subject_id: int, proposal: Proposal) -> list[Finding]:
    """Run every rule and store one finding each, with its audit event, in the caller's transaction."""
    rules = default_rules(
        min_trade=settings.ADVISOR["MIN_TRADE_AMOUNT"], max_position_weight=settings.ADVISOR["MAX_POSITION_WEIGHT"]
    )
    # The restricted list is read here, in the caller's transaction, so the rule sees the list as of this check.
    proposal = replace(proposal, restricted=restricted_tickers())
    results: list[RuleResult] = run_rules(proposal, rules)
    with transaction.atomic():
        findings = Finding.objects.bulk_create(
            [
                Finding(
                    recommendation_id=recommendation_id,
                    rule_code=r.rule_code,
                    severity=r.severity,
                    message=r.message,
                    details=r.details,
                )
                for r in results
            ]
        )
        audit_record(
            actor=None,
            action="recommendation.checked",
            object_type="portfolios.recommendation",
            object_id=recommendation_id,
            subject_id=subject_id,
            payload={
                "findings": [{"rule": r.rule_code, "severity": r.severity, "message": r.message} for r in results],
                "blocked": any(r.severity == Severity.BLOCK for r in results),
            },
        )
    return findings


@dataclass(frozen=True)
class CheckItem:
    recommendation_id: int
    subject_id: int
    proposal: Proposal


def recommendations_check_many(
    items: Sequence[CheckItem],
    *,
    min_trade: Decimal,
    restricted: frozenset[str] | None = None,
    audit_events: list[PendingEvent] | None = None,
) -> dict[int, list[RuleResult]]:
    """``recommendation_check`` for many recommendations at once (the pipeline's chunks): the same rules and the
    same findings and audit events, written with two bulk inserts in the caller's transaction (the events
    appended to ``audit_events`` instead when given: the caller appends them to the chain at its end)."""
    if not items:
        return {}
    rules = default_rules(min_trade=min_trade, max_position_weight=settings.ADVISOR["MAX_POSITION_WEIGHT"])
    listed = restricted_tickers() if restricted is None else restricted
    results = {item.recommendation_id: run_rules(replace(item.proposal, restricted=listed), rules) for item in items}
    with transaction.atomic():
        # COPY on Postgres: bulk_create quotes every message and JSON detail into arrays client-side, which was
        # the larger part of the pipeline's write stage (docs/performance.md).
        bulk_insert(
            Finding,
            ["recommendation_id", "rule_code", "severity", "message", "details"],
            (
                (item.recommendation_id, r.rule_code, r.severity, r.message, r.details)
                for item in items
                for r in results[item.recommendation_id]
            ),
        )
        events = [
            PendingEvent(
                action="recommendation.checked",
                object_type="portfolios.recommendation",
                object_id=item.recommendation_id,
                subject_id=item.subject_id,
                payload={
                    "findings": [
                        {"rule": r.rule_code, "severity": r.severity, "message": r.message}
                        for r in results[item.recommendation_id]
                    ],
                    "blocked": any(r.severity == Severity.BLOCK for r in results[item.recommendation_id]),
                },
            )
            for item in items
        ]
        if audit_events is None:
            audit_record_many(events)
        else:
            audit_events.extend(events)
    return results


def has_blocking(findings: list[Finding]) -> bool:
    return any(f.severity == Severity.BLOCK for f in findings)


# The restricted list ------------------------------------------------------------------------------

UNIVERSE_TICKERS = frozenset(ticker for ticker, *_ in ASSETS)


def restricted_tickers() -> frozenset[str]:
    """The tickers currently on the restricted list (active entries)."""
    return frozenset(RestrictedAsset.objects.filter(removed_at__isnull=True).values_list("ticker", flat=True))


def _restricted_list_validate(*, actor: Any, ticker: str, reason: str) -> tuple[str, str]:
    if getattr(actor, "role", None) != Role.ADMIN:
        raise NotAllowedError("Only an admin can change the restricted list.")
    ticker, reason = (ticker or "").strip().upper(), (reason or "").strip()
    fields: dict[str, str] = {}
    if ticker not in UNIVERSE_TICKERS:
        fields["ticker"] = f"Unknown ticker {ticker!r}: choose a fund of the universe." if ticker else "Enter a ticker."
    if not reason:
        fields["reason"] = "Give the reason."
    if fields:
        raise InvalidInputError("The restricted list entry is not valid.", fields=fields)
    return ticker, reason


def restricted_add(*, actor: Any, ticker: str, reason: str) -> RestrictedAsset:
    """Put a fund on the restricted list, with the reason, and audit it."""
    ticker, reason = _restricted_list_validate(actor=actor, ticker=ticker, reason=reason)
    already = InvalidStateError(
        f"{ticker} is already restricted.", fields={"ticker": f"{ticker} is already restricted."}
    )
    with transaction.atomic():
        if RestrictedAsset.objects.filter(ticker=ticker, removed_at__isnull=True).exists():
            raise already
        try:
            # A savepoint, so a concurrent add of the same ticker (caught by the constraint) leaves the
            # caller's transaction usable.
            with transaction.atomic():
                entry = RestrictedAsset.objects.create(
                    ticker=ticker, reason=reason, added_by=actor, added_at=timezone.now()
                )
        except IntegrityError:
            raise already from None
        audit_record(
            actor=actor,
            action="restricted_list.added",
            obj=entry,
            payload={"ticker": ticker, "reason": reason},
        )
    return entry


def restricted_remove(*, actor: Any, ticker: str, reason: str) -> RestrictedAsset:
    """Take a fund off the restricted list (the entry is kept, marked removed), with the reason, and audit it."""
    ticker, reason = _restricted_list_validate(actor=actor, ticker=ticker, reason=reason)
    with transaction.atomic():
        entry = RestrictedAsset.objects.select_for_update().filter(ticker=ticker, removed_at__isnull=True).first()
        if entry is None:
            raise InvalidStateError(f"{ticker} is not restricted.", fields={"ticker": f"{ticker} is not restricted."})
        entry.removed_by = actor
        entry.removed_at = timezone.now()
        entry.removal_reason = reason
        entry.save(update_fields=["removed_by", "removed_at", "removal_reason"])
        audit_record(
            actor=actor,
            action="restricted_list.removed",
            obj=entry,
            payload={"ticker": ticker, "reason": reason, "added_at": entry.added_at, "added_reason": entry.reason},
        )
    return entry

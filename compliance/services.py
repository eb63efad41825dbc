"""Checking a recommendation: rules run on a plain proposal, findings are stored and audited."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .audit import audit_record
from .models import Finding, Severity
from .rules import Proposal, RuleResult, default_rules, run_rules


def recommendation_check(*, recommendation_id: int, subject_id: int, proposal: Proposal) -> list[Finding]:
    """Run every rule and store one finding each, with its audit event, in the caller's transaction."""
    rules = default_rules(
        min_trade=settings.ADVISOR["MIN_TRADE_AMOUNT"], max_position_weight=settings.ADVISOR["MAX_POSITION_WEIGHT"]
    )
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


def has_blocking(findings: list[Finding]) -> bool:
    return any(f.severity == Severity.BLOCK for f in findings)

"""`make run`'s data steps are idempotent: seeding twice and fitting segments twice change nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from advisor.demo import ADVISOR, INVESTOR
from advisor.models import User
from compliance.models import AuditEvent
from portfolios.models import CashMovement
from profiling.models import Goal, Preferences, RiskProfile, SegmentationModel

pytestmark = pytest.mark.django_db


def snapshot() -> tuple[int, ...]:
    return (
        User.objects.count(),
        RiskProfile.objects.count(),
        CashMovement.objects.count(),
        Goal.objects.count(),
        Preferences.objects.count(),
        SegmentationModel.objects.count(),
        AuditEvent.objects.count(),
    )


def test_seed_demo_and_segments_are_idempotent(market_data, capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("seed_demo", peers=24)
    call_command("segment_investors", if_missing=True)
    first = snapshot()
    investor = User.objects.get(email=INVESTOR)
    assert investor.advisor == User.objects.get(email=ADVISOR)
    assert investor.risk_profiles.count() == 1 and investor.goals.count() == 1 and investor.preferences.count() == 1
    assert first[0] == 3 + 24 and first[5] == 1
    call_command("seed_demo", peers=24)
    call_command("segment_investors", if_missing=True)
    assert snapshot() == first
    out = capsys.readouterr().out
    assert "password: advisor-demo-2026" in out and "already stored" in out
    assert investor.segments.count() == 1

"""Stale proposals expire: a pending or blocked recommendation sized at closes a week old is not left for an
advisor to approve at today's prices, nor does it keep its account from a fresh proposal."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from advisor.errors import InvalidStateError
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from portfolios.models import LIVE_BOOK, Recommendation, RecommendationStatus
from portfolios.services.recommendations import recommendation_approve, recommendations_expire
from tests.services.trading import recommend

pytestmark = pytest.mark.django_db

PROPOSED = date(2026, 7, 20)


@pytest.fixture
def proposals(funded_alice):  # type: ignore[no-untyped-def]
    account = funded_alice.accounts.get()
    pending = recommend(account, PROPOSED, [("buy", "VTI", "1")])
    blocked = recommend(account, PROPOSED, [("buy", "AGG", "1")])
    blocked.status = RecommendationStatus.BLOCKED
    blocked.save(update_fields=["status"])
    approved = recommend(account, PROPOSED, [("buy", "BND", "1")])
    Recommendation.objects.filter(pk=approved.pk).update(status=RecommendationStatus.APPROVED)
    return pending, blocked, approved


def test_pending_and_blocked_recommendations_expire_after_the_maximum_age_and_are_audited(proposals, settings) -> None:  # type: ignore[no-untyped-def]
    pending, blocked, approved = proposals
    settings.ADVISOR = {**settings.ADVISOR, "RECOMMENDATION_MAX_AGE_DAYS": 7}
    # when: exactly seven days later nothing expires; eight days later the open ones do
    assert recommendations_expire(book=LIVE_BOOK, market_date=PROPOSED + timedelta(days=7)) == 0
    assert recommendations_expire(book=LIVE_BOOK, market_date=PROPOSED + timedelta(days=8)) == 2
    # then
    statuses = dict(Recommendation.objects.values_list("pk", "status"))
    assert statuses[pending.pk] == statuses[blocked.pk] == RecommendationStatus.EXPIRED
    assert statuses[approved.pk] == RecommendationStatus.APPROVED  # the broker's now
    events = AuditEvent.objects.filter(action="recommendation.expired").order_by("id")
    assert [(e.object_id, e.payload["old_status"], e.subject_id) for e in events] == [
        (str(pending.pk), "pending", pending.account.owner_id),
        (str(blocked.pk), "blocked", pending.account.owner_id),
    ]
    assert audit_verify()[1] is None
    pending.refresh_from_db()
    assert pending.decided_by is None and "2026-07-28" in pending.decision_comment
    # and a second pass finds nothing more
    assert recommendations_expire(book=LIVE_BOOK, market_date=PROPOSED + timedelta(days=9)) == 0


def test_an_expired_recommendation_cannot_be_approved(proposals, carol) -> None:  # type: ignore[no-untyped-def]
    pending, _, _ = proposals
    recommendations_expire(book=LIVE_BOOK, market_date=PROPOSED + timedelta(days=30))
    with pytest.raises(InvalidStateError) as refused:
        recommendation_approve(recommendation_id=pending.pk, advisor=carol)
    assert refused.value.message == "This recommendation is expired: prices moved on."
    assert not pending.orders.exists()


def test_other_books_are_left_alone(proposals) -> None:  # type: ignore[no-untyped-def]
    assert recommendations_expire(book="simulation", market_date=PROPOSED + timedelta(days=30)) == 0
    assert not Recommendation.objects.filter(status=RecommendationStatus.EXPIRED).exists()


def test_the_pipeline_expires_a_stale_proposal_and_proposes_afresh(funded_alice) -> None:  # type: ignore[no-untyped-def]
    from portfolios.models import Price
    from portfolios.services.pipeline import pipeline_run

    # given: last shipped day's proposal to invest Alice's cash, never decided
    first = pipeline_run(market_date=date(2026, 7, 31))
    stale = Recommendation.objects.get(pipeline_run=first)
    # when: the pipeline runs eleven days later (every fund closing as on the last shipped day)
    later = date(2026, 8, 11)
    Price.objects.bulk_create(
        Price(asset_id=p.asset_id, date=later, close=p.close) for p in Price.objects.filter(date=date(2026, 7, 31))
    )
    run = pipeline_run(market_date=later)
    # then: the old one expired in the run's prepare stage, and the account has a fresh proposal in this run
    stale.refresh_from_db()
    assert stale.status == RecommendationStatus.EXPIRED
    fresh = Recommendation.objects.get(pipeline_run=run)
    assert (fresh.account_id, fresh.status) == (stale.account_id, RecommendationStatus.PENDING)
    assert run.counts["recommendations_expired"] == 1 and run.counts["recommendations"] == 1

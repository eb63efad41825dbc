"""Behavioural scoring on the database: the nightly bulk update (scores, profile versions with reasons, audit
events, idempotent on a date, overrides untouched), the hooks that record events only in a drawdown, and the
"sell everything" request API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Max

from advisor.services import investor_assign_advisor
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from portfolios.models import Asset, Order, Price, Recommendation
from portfolios.selectors import market_date_latest, market_drawdown
from portfolios.services.accounts import account_deposit, account_open
from portfolios.services.pipeline import pipeline_run
from portfolios.services.recommendations import recommendation_reject
from profiling.models import BehaviorEvent, BehaviorEventType, BehaviorScore, LoginRecord, ProfileSource, RiskProfile
from profiling.services import goal_create, goal_update, profile_override, profile_submit
from profiling.services.behaviour import behavior_event_record, behaviour_scores_update
from profiling.tasks import update_behavior_scores
from tests.factories import BALANCED_ANSWERS, InvestorFactory

pytestmark = pytest.mark.django_db

AS_OF = date(2026, 8, 3)
CAUTIOUS_ANSWERS = {**BALANCED_ANSWERS, "fall_10": "sell_some", "fall_20": "sell_all", "fall_35": "sell_all"}


def at(days_before: int) -> datetime:
    """Noon UTC, ``days_before`` days before AS_OF."""
    return datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC) - timedelta(days=days_before)


@pytest.fixture
def drawdown(market_data) -> Decimal:  # type: ignore[no-untyped-def]
    """The market proxy (VTI) closes 15% below its one-year high on the next market day."""
    vti = Asset.objects.get(ticker="VTI")
    latest = market_date_latest()
    peak = Price.objects.filter(asset=vti, date__gt=latest - timedelta(days=365)).aggregate(peak=Max("close"))["peak"]
    Price.objects.create(
        asset=vti, date=latest + timedelta(days=3), close=(peak * Decimal("0.85")).quantize(Decimal("0.01"))
    )
    value = market_drawdown()
    assert value >= Decimal("0.10")
    return value


def events(investor, event_type: BehaviorEventType) -> int:  # type: ignore[no-untyped-def]
    return BehaviorEvent.objects.filter(investor=investor, event_type=event_type).count()


def rows() -> tuple[int, int, int, int]:
    return (
        BehaviorScore.objects.count(),
        RiskProfile.objects.count(),
        AuditEvent.objects.count(),
        BehaviorEvent.objects.count(),
    )


# --- The nightly update ----------------------------------------------------------------------------------------


@pytest.fixture
def stream(alice, bob):  # type: ignore[no-untyped-def]
    """Alice asked to sell everything 10 days ago and paused contributions 5 days ago (score about -4.3); Bob had a
    recommendation rejected today (-0.5); Dan has no profile but asked to sell everything today (-3)."""
    profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    profile_submit(investor=bob, answers=BALANCED_ANSWERS)
    dan = InvestorFactory(email="dan@example.com")
    behavior_event_record(investor=alice, event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(10))
    behavior_event_record(investor=alice, event_type=BehaviorEventType.CONTRIBUTIONS_PAUSED, occurred_at=at(5))
    behavior_event_record(investor=bob, event_type=BehaviorEventType.RECOMMENDATION_REJECTED, occurred_at=at(0))
    behavior_event_record(investor=dan, event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(0))
    # Not counted: after the scoring date, and older than the two-year look-back.
    behavior_event_record(investor=bob, event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(-1))
    behavior_event_record(investor=bob, event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(800))
    return {"alice": alice, "bob": bob, "dan": dan}


def test_the_update_scores_in_bulk_and_lowers_the_level_one_step_with_a_reason(stream) -> None:  # type: ignore[no-untyped-def]
    alice, bob, dan = stream["alice"], stream["bob"], stream["dan"]
    before = alice.risk_profiles.get()
    audit_before = AuditEvent.objects.count()
    # when
    counts = behaviour_scores_update(as_of=AS_OF)
    # then: one score per investor with events, on the date
    assert counts == {
        "investors_scored": 3, "already_scored": 0, "events_counted": 4, "profiles_adjusted": 1,
        "overrides_unchanged": 0, "without_profile": 1, "needs_advisor": 0,
        "awaiting_investor_confirmation": 0,
    }  # fmt: skip
    scores = {s.investor_id: s for s in BehaviorScore.objects.filter(as_of=AS_OF)}
    expected_alice = Decimal(-3 * 0.5 ** (10 / 180) - 1.5 * 0.5 ** (5 / 90)).quantize(Decimal("0.0001"))
    assert scores[alice.pk].score == expected_alice == Decimal("-4.3300")
    assert (scores[alice.pk].adjustment, scores[alice.pk].events_counted) == (-1, 2)
    assert (scores[bob.pk].score, scores[bob.pk].adjustment, scores[bob.pk].events_counted) == (Decimal("-0.5"), 0, 1)
    assert (scores[dan.pk].adjustment, dan.risk_profiles.count()) == (-1, 0)
    # a new profile version for Alice only, one step down, with its reason
    now = alice.risk_profiles.order_by("-version").first()
    assert (now.version, now.source, now.behavioural_adjustment) == (2, ProfileSource.BEHAVIOUR, -1)
    assert now.risk_level == before.risk_level and now.effective_risk_level == before.risk_level - 1
    assert now.answers == before.answers and now.created_by is None
    assert now.reason.startswith(
        "Behavioural score \u22124.33 on 2026-08-03 is at or below \u22123.00, so the effective"
    )
    assert f"from {before.effective_risk_level} to {before.risk_level - 1}" in now.reason
    assert "asked to sell everything during a market fall (1 event, -2.89)" in now.reason
    assert "stopped monthly contributions during a market fall (1 event, -1.44)" in now.reason
    assert bob.risk_profiles.count() == 1
    # audited: one event for the changed investor and one for the run
    adjusted = AuditEvent.objects.get(action="profile.behaviour_adjusted")
    assert (adjusted.subject_id, adjusted.object_id, adjusted.actor_id) == (alice.pk, str(now.pk), None)
    assert adjusted.payload == {
        "as_of": "2026-08-03", "version": 2, "score": "-4.3300",
        "old_behavioural_adjustment": 0, "new_behavioural_adjustment": -1,
        "old_effective_risk_level": before.effective_risk_level, "new_effective_risk_level": before.risk_level - 1,
        "needs_advisor": False, "events": {"panic_sell_request": 1, "contributions_paused": 1},
    }  # fmt: skip
    run = AuditEvent.objects.get(action="behaviour.scores_updated")
    assert run.payload == {"as_of": "2026-08-03", **counts}
    assert AuditEvent.objects.count() == audit_before + 2
    assert audit_verify()[1] is None


def test_re_running_the_same_day_changes_nothing(stream) -> None:  # type: ignore[no-untyped-def]
    # given: the day is scored
    behaviour_scores_update(as_of=AS_OF)
    # and Bob panics after the run
    behavior_event_record(investor=stream["bob"], event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(0))
    before = rows()
    # when: the nightly task is delivered again for the same date
    counts = update_behavior_scores(AS_OF.isoformat())
    # then: no score, no profile version, no audit event
    assert counts["investors_scored"] == 0 and counts["profiles_adjusted"] == 0 and counts["already_scored"] == 3
    assert rows() == before
    assert stream["bob"].risk_profiles.count() == 1
    # and the next day counts Bob's requests
    assert update_behavior_scores((AS_OF + timedelta(days=1)).isoformat())["profiles_adjusted"] == 1


def test_a_recovered_score_waits_for_the_investor_to_restore_the_level(stream) -> None:  # type: ignore[no-untyped-def]
    from advisor.errors import InvalidStateError
    from profiling.services.behaviour import behaviour_step_restorable, behaviour_step_restore

    alice = stream["alice"]
    behaviour_scores_update(as_of=AS_OF)
    questionnaire_level = alice.risk_profiles.get(version=1).risk_level
    with pytest.raises(InvalidStateError):
        behaviour_step_restore(investor=alice)  # the events still count
    # when: 400 days later the panic request is worth 0.62 and the pause is no longer counted
    later = AS_OF + timedelta(days=400)
    counts = behaviour_scores_update(as_of=later)
    # then: never raised without her confirmation
    assert counts["profiles_adjusted"] == 0 and counts["awaiting_investor_confirmation"] == 1
    assert alice.risk_profiles.order_by("-version").first().behavioural_adjustment == -1
    assert behaviour_step_restorable(investor=alice)
    now = behaviour_step_restore(investor=alice)
    assert (now.version, now.source, now.behavioural_adjustment) == (3, ProfileSource.BEHAVIOUR, 0)
    assert now.effective_risk_level == questionnaire_level and now.created_by == alice
    event = AuditEvent.objects.filter(action="profile.behaviour_restored").get()
    assert event.actor == alice and event.payload["new_effective_risk_level"] == questionnaire_level
    assert BehaviorScore.objects.get(investor=alice, as_of=later).events_counted == 1
    # and once the events leave the look-back window the investor is no longer scored: their score is 0
    assert behaviour_scores_update(as_of=AS_OF + timedelta(days=900))["investors_scored"] == 0


def test_a_far_lower_score_suggests_an_advisor_but_moves_one_step_only(alice) -> None:  # type: ignore[no-untyped-def]
    profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    for days in (1, 2, 3):
        behavior_event_record(investor=alice, event_type=BehaviorEventType.PANIC_SELL_REQUEST, occurred_at=at(days))
    counts = behaviour_scores_update(as_of=AS_OF)
    now = alice.risk_profiles.order_by("-version").first()
    assert counts["needs_advisor"] == 1 and now.behavioural_adjustment == -1
    assert now.effective_risk_level == now.risk_level - 1
    assert "the advisor should review whether a larger change is right" in now.reason
    assert AuditEvent.objects.get(action="profile.behaviour_adjusted").payload["needs_advisor"] is True


def test_an_advisor_override_is_never_changed_by_behaviour(stream, carol, erin) -> None:  # type: ignore[no-untyped-def]
    alice = stream["alice"]
    investor_assign_advisor(investor=alice, advisor=carol, actor=erin)
    alice.refresh_from_db()
    override = profile_override(advisor=carol, investor=alice, risk_level=7, reason="Discussed at length.")
    # when
    counts = behaviour_scores_update(as_of=AS_OF)
    # then: the score is recorded, the override stays current
    assert counts["overrides_unchanged"] == 1 and counts["profiles_adjusted"] == 0
    assert BehaviorScore.objects.get(investor=alice, as_of=AS_OF).adjustment == -1
    assert alice.risk_profiles.order_by("-version").first() == override
    assert not AuditEvent.objects.filter(action="profile.behaviour_adjusted").exists()


def test_a_questionnaire_keeps_the_step_and_the_next_run_builds_on_it(stream) -> None:  # type: ignore[no-untyped-def]
    alice = stream["alice"]
    behaviour_scores_update(as_of=AS_OF)
    resubmitted = profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    assert resubmitted.behavioural_adjustment == -1
    behaviour_scores_update(as_of=AS_OF + timedelta(days=1))
    assert alice.risk_profiles.order_by("-version").first() == resubmitted


# --- Hooks: an event only in a drawdown --------------------------------------------------------------------------


def test_no_hook_records_an_event_outside_a_drawdown(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    alice = funded_alice
    assert market_drawdown() < Decimal("0.10")
    account_deposit(account=alice.accounts.get(), amount="500", actor=alice)
    goal = goal_create(investor=alice, data={"goal_type": "wealth", "name": "Wealth", "target_amount": "90000",
                                             "target_date": "2040-01-01", "monthly_contribution": "300"})  # fmt: skip
    goal_update(investor=alice, goal_id=goal.pk, data={**_goal_data(), "monthly_contribution": "0"})
    profile_submit(investor=alice, answers=CAUTIOUS_ANSWERS)
    for _ in range(7):
        client.force_login(alice)
    assert BehaviorEvent.objects.count() == 0
    assert LoginRecord.objects.filter(investor=alice).count() == 7


def _goal_data() -> dict[str, str]:
    return {"goal_type": "wealth", "name": "Wealth", "target_amount": "90000", "target_date": "2040-01-01"}


def test_adding_money_in_a_fall_is_recorded_once_a_day(funded_alice, drawdown) -> None:  # type: ignore[no-untyped-def]
    account = funded_alice.accounts.get()
    account_deposit(account=account, amount="500", actor=funded_alice)
    account_deposit(account=account, amount="0.01", actor=funded_alice)
    event = BehaviorEvent.objects.get(investor=funded_alice)
    assert event.event_type == BehaviorEventType.ADDED_MONEY_IN_FALL
    assert event.details == {"market_drawdown": str(drawdown), "account_id": account.pk, "amount": "500"}
    assert AuditEvent.objects.filter(action="behavior.event_recorded", object_id=str(event.pk)).count() == 1


def test_pausing_contributions_in_a_fall_is_recorded(alice, drawdown) -> None:  # type: ignore[no-untyped-def]
    goal = goal_create(investor=alice, data={**_goal_data(), "monthly_contribution": "300"})
    goal_update(investor=alice, goal_id=goal.pk, data={**_goal_data(), "monthly_contribution": "200"})
    assert events(alice, BehaviorEventType.CONTRIBUTIONS_PAUSED) == 0  # lowered, not paused
    goal_update(investor=alice, goal_id=goal.pk, data={**_goal_data(), "monthly_contribution": "0"})
    event = BehaviorEvent.objects.get(investor=alice)
    assert (event.event_type, event.details["old_monthly_contribution"]) == ("contributions_paused", "200.00")


def test_lowering_answers_in_a_fall_is_recorded(alice, drawdown) -> None:  # type: ignore[no-untyped-def]
    first = profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    profile_submit(investor=alice, answers=BALANCED_ANSWERS)  # the same answers: not lower
    assert BehaviorEvent.objects.count() == 0
    lower = profile_submit(investor=alice, answers=CAUTIOUS_ANSWERS)
    event = BehaviorEvent.objects.get(investor=alice)
    assert event.event_type == BehaviorEventType.ANSWERS_CHANGED_AFTER_LOSS
    assert event.details["old_tolerance_score"] == str(first.tolerance_score)
    assert event.details["new_tolerance_score"] == str(lower.tolerance_score)


def test_a_rejected_recommendation_in_a_fall_is_recorded_for_the_owner(funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    recommendation = Recommendation.objects.get(account__owner=funded_alice)
    _drawdown_now()
    recommendation_reject(recommendation_id=recommendation.pk, advisor=carol, comment="Not now")
    event = BehaviorEvent.objects.get()
    assert (event.investor_id, event.event_type) == (funded_alice.pk, BehaviorEventType.RECOMMENDATION_REJECTED)
    assert event.details["recommendation_id"] == recommendation.pk


def test_a_rejection_outside_a_fall_is_not_recorded(funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    pipeline_run()
    recommendation = Recommendation.objects.get(account__owner=funded_alice)
    recommendation_reject(recommendation_id=recommendation.pk, advisor=carol, comment="Not now")
    assert BehaviorEvent.objects.count() == 0


def _drawdown_now() -> None:
    vti = Asset.objects.get(ticker="VTI")
    latest = market_date_latest()
    peak = Price.objects.filter(asset=vti, date__gt=latest - timedelta(days=365)).aggregate(peak=Max("close"))["peak"]
    Price.objects.create(
        asset=vti, date=latest + timedelta(days=3), close=(peak * Decimal("0.8")).quantize(Decimal("0.01"))
    )


def test_a_login_spike_in_a_fall_is_recorded_once_a_day(client, alice, carol, drawdown) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        client.force_login(alice)
    assert BehaviorEvent.objects.count() == 0  # five logins in a day are not a spike
    client.force_login(alice)
    event = BehaviorEvent.objects.get()
    assert (event.investor_id, event.event_type) == (alice.pk, BehaviorEventType.LOGIN_SPIKE_IN_DRAWDOWN)
    assert event.details["logins_24h"] == 6
    for _ in range(3):
        client.force_login(alice)
        client.force_login(carol)  # advisors' logins are not recorded
    assert BehaviorEvent.objects.count() == 1
    assert LoginRecord.objects.filter(investor=carol).count() == 0


def test_old_login_records_are_pruned(alice) -> None:  # type: ignore[no-untyped-def]
    from profiling.services.behaviour_hooks import investor_logged_in

    investor_logged_in(user=alice, at=at(5))
    investor_logged_in(user=alice, at=at(0))
    assert list(LoginRecord.objects.filter(investor=alice).values_list("logged_in_at", flat=True)) == [at(0)]


# --- "Sell everything" requests ------------------------------------------------------------------------------------


def url(account) -> str:  # type: ignore[no-untyped-def]
    return f"/api/accounts/{account.pk}/sell-everything-requests/"


def test_an_investor_asks_to_sell_everything_in_a_fall(client, funded_alice, drawdown) -> None:  # type: ignore[no-untyped-def]
    account = funded_alice.accounts.get()
    orders = Order.objects.count()
    client.force_login(funded_alice)
    # when
    response = client.post(url(account), {"reason": "I cannot watch it fall."}, content_type="application/json")
    # then: recorded for the advisor, audited, and a behavioural event; no trade
    assert response.status_code == 201
    body = response.json()
    assert (body["account"], body["reason"], body["in_drawdown"]) == (account.pk, "I cannot watch it fall.", True)
    assert Decimal(body["market_drawdown"]) == drawdown and "no trade is made automatically" in body["next_step"]
    event = BehaviorEvent.objects.get(event_type=BehaviorEventType.PANIC_SELL_REQUEST)
    audit = AuditEvent.objects.get(action="account.sell_everything_requested")
    assert (audit.actor_id, audit.subject_id, audit.object_id) == (funded_alice.pk, funded_alice.pk, str(account.pk))
    assert audit.payload == {"reason": "I cannot watch it fall.", "market_drawdown": str(drawdown),
                             "behavior_event_id": event.pk}  # fmt: skip
    assert Order.objects.count() == orders


def test_a_request_outside_a_fall_is_audited_but_not_an_event(client, funded_alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    response = client.post(url(funded_alice.accounts.get()), {"reason": "Retiring"}, content_type="application/json")
    assert response.status_code == 201 and response.json()["in_drawdown"] is False
    assert AuditEvent.objects.filter(action="account.sell_everything_requested").count() == 1
    assert BehaviorEvent.objects.count() == 0
    # The assigned advisor sees the request on the client page.
    client.force_login(funded_alice.advisor)
    page = client.get(f"/advisor/clients/{funded_alice.pk}/").content.decode()
    assert "Requests to sell everything" in page and "“Retiring”" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [({}, "This field is required."), ({"reason": "   "}, "This field may not be blank."),
     ({"reason": "x" * 2001}, "Ensure this field has no more than 2000 characters.")],
)  # fmt: skip
def test_a_request_without_a_good_reason_is_400_and_writes_nothing(
    client, funded_alice, drawdown, data, message
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(funded_alice)
    before = rows()
    response = client.post(url(funded_alice.accounts.get()), data, content_type="application/json")
    assert response.status_code == 400 and response.json()["reason"] == [message]
    assert rows() == before


def test_only_the_owner_may_ask(client, funded_alice, bob, carol, drawdown) -> None:  # type: ignore[no-untyped-def]
    account = funded_alice.accounts.get()
    account_open(owner=bob)
    before = rows()
    client.force_login(bob)
    assert client.post(url(account), {"reason": "x"}, content_type="application/json").status_code == 404
    client.force_login(carol)  # Alice's own advisor: the request is the investor's
    assert client.post(url(account), {"reason": "x"}, content_type="application/json").status_code == 403
    client.logout()
    assert client.post(url(account), {"reason": "x"}, content_type="application/json").status_code in (401, 403)
    assert rows() == before

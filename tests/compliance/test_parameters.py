"""Four-eyes parameter changes: who may propose and decide, what is validated, what is audited, and that an
approved change is in force for the next model build."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from compliance.models import AuditEvent, ChangeStatus, ParameterChange, ParameterVersion
from compliance.parameters import (
    parameter_change_approve,
    parameter_change_diffs,
    parameter_change_propose,
    parameter_change_reject,
    parameter_changes_pending,
    parameter_set_current,
    parameter_sets_current,
    parameter_sets_initialize,
    parameter_versions_history,
)
from portfolios.models import OptimizationRun
from portfolios.policy import policy_values
from portfolios.selectors import (
    market_date_latest,
    optimization_policy_current,
    rebalancing_policy_current,
)
from portfolios.services.optimization import model_portfolios_build
from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db

CAUTIOUS_LEVEL_1 = {"1": 12.0, "2": 8.037581, "3": 6.46027, "4": 5.192494, "5": 4.173509, "6": 3.354491,
                    "7": 2.696199, "8": 2.167092, "9": 1.741818, "10": 1.4}  # fmt: skip


@pytest.fixture
def frank(db: None) -> Any:
    """A second admin: Erin proposes, Frank decides (or the other way round)."""
    return AdminFactory(email="frank@example.com", full_name="Frank Admin")


def values_with(name: str, **changes: Any) -> dict[str, Any]:
    return parameter_set_current(name).values | changes


def state() -> tuple[list[tuple[str, int]], list[tuple[int, str]], int]:
    """What a refusal must leave as it was: versions, changes and their status, audit events."""
    return (
        list(ParameterVersion.objects.order_by("id").values_list("name", "version")),
        list(ParameterChange.objects.order_by("id").values_list("id", "status")),
        AuditEvent.objects.count(),
    )


# The sets in force ------------------------------------------------------------------------------------


def test_with_nothing_stored_the_defaults_are_version_0_as_portfolios_sees_them() -> None:
    # The compliance selector rebuilds the defaults without importing portfolios' models: keep both in step.
    current = parameter_sets_current()
    assert current["optimization"].version == 0 and current["optimization"].stored is None
    assert current["optimization"].values == policy_values(optimization_policy_current()[1])
    assert current["rebalancing"].values == policy_values(rebalancing_policy_current()[1])
    assert current["optimization"].values["estimation_years"] == 3  # the tests' settings apply to version 0


# Propose ------------------------------------------------------------------------------------------------


def test_a_proposal_is_pending_and_audited_with_the_old_and_new_values(erin) -> None:  # type: ignore[no-untyped-def]
    # when
    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Fewer small trades"
    )
    # then
    assert (change.name, change.base_version, change.status, change.proposed_by) == (
        "rebalancing",
        0,
        ChangeStatus.PENDING,
        erin,
    )
    assert change.values["min_trade"] == "75"
    assert parameter_changes_pending() == [change]
    assert ParameterVersion.objects.count() == 0  # nothing in force yet
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_id, event.object_type, event.object_id) == (
        "parameters.change_proposed",
        erin.pk,
        "compliance.parameterchange",
        str(change.pk),
    )
    assert event.payload == {
        "name": "rebalancing",
        "base_version": 0,
        "reason": "Fewer small trades",
        "changes": {"min_trade": {"old": "50", "new": "75"}},
    }


def test_proposed_values_are_stored_in_their_canonical_form(erin) -> None:  # type: ignore[no-untyped-def]
    # Integer keys, integers for floats and tuples: the same set as the validator reads it.
    values = values_with("optimization", risk_aversion={int(k): v for k, v in CAUTIOUS_LEVEL_1.items()}, tau=1)
    change = parameter_change_propose(actor=erin, name="optimization", values=values, reason="Review")
    assert change.values["risk_aversion"] == CAUTIOUS_LEVEL_1
    assert change.values["tau"] == 1.0
    assert parameter_change_diffs([change])[change.pk] == {
        "risk_aversion": {"old": values_with("optimization")["risk_aversion"], "new": CAUTIOUS_LEVEL_1},
        "tau": {"old": 0.05, "new": 1.0},
    }


@pytest.mark.parametrize(
    ("name", "values", "reason", "fields"),
    [
        ("optimization", {"max_asset_weight": 2}, "Why not", {"values.max_asset_weight"}),
        ("optimization", {"risk_aversion": {"1": 1.0}}, "Why not", {"values.risk_aversion"}),
        ("optimization", {"benchmark": {"VTI": 0.5}, "tau": "abc"}, "", {"values.benchmark", "values.tau", "reason"}),
        ("optimization", {"surprise": 1}, "Why not", {"values.surprise"}),
        ("rebalancing", {"min_trade": 60}, "Why not", set()),  # an integer is accepted as a decimal
        ("rebalancing", {"band_absolute": 0.05}, "Why not", {"values.band_absolute"}),  # floats are not money
        ("rebalancing", {"switch_back_days": 10}, "Why not", {"values.switch_back_days"}),
        ("dividends", {}, "Why not", {"name"}),
    ],
)
def test_invalid_proposals_name_every_bad_field_and_write_nothing(erin, name, values, reason, fields) -> None:  # type: ignore[no-untyped-def]
    full = values_with(name, **values) if name in ("optimization", "rebalancing") else values
    before = state()
    if not fields:
        parameter_change_propose(actor=erin, name=name, values=full, reason=reason)
        return
    with pytest.raises(InvalidInputError) as excinfo:
        parameter_change_propose(actor=erin, name=name, values=full, reason=reason)
    assert set(excinfo.value.fields) == fields
    assert state() == before


def test_a_missing_parameter_is_named(erin) -> None:  # type: ignore[no-untyped-def]
    values = values_with("rebalancing")
    del values["min_trade"]
    with pytest.raises(InvalidInputError) as excinfo:
        parameter_change_propose(actor=erin, name="rebalancing", values=values, reason="Why not")
    assert set(excinfo.value.fields) == {"values.min_trade"}


def test_values_that_are_not_an_object_are_refused(erin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as excinfo:
        parameter_change_propose(actor=erin, name="rebalancing", values=[1, 2], reason="Why not")
    assert excinfo.value.fields == {"values": "Expected an object of parameters."}


def test_a_proposal_that_changes_nothing_is_refused(erin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as excinfo:
        parameter_change_propose(actor=erin, name="rebalancing", values=values_with("rebalancing"), reason="Same")
    assert excinfo.value.fields == {"values": "These are the values of version 0, already in force."}
    assert state() == ([], [], 0)


def test_non_admins_cannot_propose(alice, carol) -> None:  # type: ignore[no-untyped-def]
    for user in (alice, carol):
        with pytest.raises(NotAllowedError):
            parameter_change_propose(
                actor=user, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Mine"
            )
    assert state() == ([], [], 0)


def test_a_second_pending_change_to_the_same_set_is_refused(erin, frank) -> None:  # type: ignore[no-untyped-def]
    first = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="First"
    )
    before = state()
    with pytest.raises(InvalidStateError) as excinfo:
        parameter_change_propose(
            actor=frank, name="rebalancing", values=values_with("rebalancing", min_trade="80"), reason="Second"
        )
    assert set(excinfo.value.fields) == {"name"}
    assert state() == before
    # another set is independent
    parameter_change_propose(
        actor=frank, name="optimization", values=values_with("optimization", tau=0.1), reason="Other set"
    )
    assert {c.name for c in parameter_changes_pending()} == {"rebalancing", "optimization"}
    assert first.status == ChangeStatus.PENDING


# Approve ------------------------------------------------------------------------------------------------


def test_the_proposer_cannot_approve_or_reject_their_own_change(erin) -> None:  # type: ignore[no-untyped-def]
    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Mine"
    )
    before = state()
    with pytest.raises(NotAllowedError, match="another admin must approve"):
        parameter_change_approve(actor=erin, change_id=change.pk)
    with pytest.raises(NotAllowedError):
        parameter_change_reject(actor=erin, change_id=change.pk, comment="Withdrawn")
    assert state() == before


def test_the_database_refuses_a_decision_by_the_proposer(erin) -> None:  # type: ignore[no-untyped-def]
    from django.db import IntegrityError, transaction

    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Mine"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ParameterChange.objects.filter(pk=change.pk).update(
            status=ChangeStatus.APPROVED, decided_by=erin, decided_at=timezone.now()
        )


def test_non_admins_cannot_decide(erin, carol, alice) -> None:  # type: ignore[no-untyped-def]
    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Mine"
    )
    before = state()
    for user in (carol, alice):
        with pytest.raises(NotAllowedError):
            parameter_change_approve(actor=user, change_id=change.pk)
        with pytest.raises(NotAllowedError):
            parameter_change_reject(actor=user, change_id=change.pk, comment="No")
    assert state() == before


def test_approval_puts_the_values_in_force_and_is_audited(erin, frank, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    # given
    change = parameter_change_propose(
        actor=erin,
        name="rebalancing",
        values=values_with("rebalancing", min_trade="75", band_absolute="0.06"),
        reason="Fewer small trades",
    )
    # when
    with django_capture_on_commit_callbacks() as queued:
        version = parameter_change_approve(actor=frank, change_id=change.pk, comment="Agreed in committee")
    # then
    change.refresh_from_db()
    assert (version.name, version.version, version.change) == ("rebalancing", 1, change)
    assert (change.status, change.decided_by, change.decision_comment) == (
        ChangeStatus.APPROVED,
        frank,
        "Agreed in committee",
    )
    assert change.decided_at == version.created_at
    current_version, policy = rebalancing_policy_current()
    assert current_version == 1 and str(policy.min_trade) == "75" and str(policy.band_absolute) == "0.06"
    assert parameter_set_current("rebalancing").stored == version
    assert parameter_versions_history() == [version]
    event = AuditEvent.objects.filter(action="parameters.changed").get()
    assert (event.actor_id, event.object_type, event.object_id) == (
        frank.pk,
        "compliance.parameterchange",
        str(change.pk),
    )
    assert event.payload == {
        "name": "rebalancing",
        "old_version": 0,
        "new_version": 1,
        "proposed_by": erin.pk,
        "comment": "Agreed in committee",
        "changes": {"band_absolute": {"old": "0.05", "new": "0.06"}, "min_trade": {"old": "50", "new": "75"}},
    }
    assert queued == []  # rebalancing parameters do not change the model portfolios
    # a decided change cannot be decided again
    with pytest.raises(InvalidStateError):
        parameter_change_approve(actor=frank, change_id=change.pk)
    with pytest.raises(InvalidStateError):
        parameter_change_reject(actor=frank, change_id=change.pk, comment="Too late")


def test_the_next_change_builds_on_the_approved_version(erin, frank) -> None:  # type: ignore[no-untyped-def]
    first = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="One"
    )
    parameter_change_approve(actor=frank, change_id=first.pk)
    second = parameter_change_propose(
        actor=frank, name="rebalancing", values=values_with("rebalancing", min_trade="90"), reason="Two"
    )
    assert second.base_version == 1
    version = parameter_change_approve(actor=erin, change_id=second.pk)
    assert version.version == 2 and rebalancing_policy_current()[0] == 2
    assert AuditEvent.objects.filter(action="parameters.changed").last().payload["changes"] == {
        "min_trade": {"old": "75", "new": "90"}
    }


def test_a_stale_change_is_refused_and_must_be_proposed_again(erin, frank) -> None:  # type: ignore[no-untyped-def]
    # given a change against version 0, and a version 1 stored since (by another path: a data migration)
    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Against v0"
    )
    ParameterVersion.objects.create(
        name="rebalancing", version=1, values=values_with("rebalancing", min_trade="60"), created_at=timezone.now()
    )
    before = state()
    # when / then
    with pytest.raises(InvalidStateError, match="propose again"):
        parameter_change_approve(actor=frank, change_id=change.pk)
    assert state() == before
    # it can still be rejected, and then proposed again against version 1
    parameter_change_reject(actor=frank, change_id=change.pk, comment="Stale")
    again = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Against v1"
    )
    assert again.base_version == 1
    assert parameter_change_approve(actor=frank, change_id=again.pk).version == 2


def test_values_that_no_longer_validate_are_refused_at_approval(erin, frank) -> None:  # type: ignore[no-untyped-def]
    change = parameter_change_propose(
        actor=erin, name="rebalancing", values=values_with("rebalancing", min_trade="75"), reason="Fine then"
    )
    # e.g. the validation rules tightened in a release since the proposal
    ParameterChange.objects.filter(pk=change.pk).update(values=values_with("rebalancing", min_trade="-1"))
    before = state()
    with pytest.raises(InvalidStateError) as excinfo:
        parameter_change_approve(actor=frank, change_id=change.pk)
    assert set(excinfo.value.fields) == {"values.min_trade"}
    assert state() == before


def test_rejection_needs_a_reason_and_changes_nothing_else(erin, frank) -> None:  # type: ignore[no-untyped-def]
    change = parameter_change_propose(
        actor=erin, name="optimization", values=values_with("optimization", tau=0.1), reason="Try"
    )
    before = state()
    with pytest.raises(InvalidInputError) as excinfo:
        parameter_change_reject(actor=frank, change_id=change.pk, comment="  ")
    assert set(excinfo.value.fields) == {"comment"}
    assert state() == before
    # when
    rejected = parameter_change_reject(actor=frank, change_id=change.pk, comment="Not discussed")
    # then
    assert (rejected.status, rejected.decided_by, rejected.decision_comment) == (
        ChangeStatus.REJECTED,
        frank,
        "Not discussed",
    )
    assert ParameterVersion.objects.count() == 0 and optimization_policy_current()[0] == 0
    event = AuditEvent.objects.filter(action="parameters.change_rejected").get()
    assert (event.actor_id, event.object_id) == (frank.pk, str(change.pk))
    assert event.payload == {
        "name": "optimization",
        "base_version": 0,
        "proposed_by": erin.pk,
        "comment": "Not discussed",
    }
    assert parameter_changes_pending() == []


# Approval and the model build -----------------------------------------------------------------------------


def test_approved_optimization_parameters_drive_the_next_build(  # type: ignore[no-untyped-def]
    erin, frank, market_data, django_capture_on_commit_callbacks
) -> None:
    # given the model portfolios under the defaults (version 0)
    as_of = market_date_latest()
    before = model_portfolios_build(as_of=as_of)
    change = parameter_change_propose(
        actor=erin, name="optimization", values=values_with("optimization", risk_aversion=CAUTIOUS_LEVEL_1),
        reason="Level 1 holds less equity",
    )  # fmt: skip
    # when
    with django_capture_on_commit_callbacks() as queued:
        parameter_change_approve(actor=frank, change_id=change.pk)
    after = model_portfolios_build(as_of=as_of)
    # then: a new run under version 1, recorded in its parameters, and the re-optimization was queued
    assert len(queued) == 1
    assert after.pk != before.pk and after.fingerprint != before.fingerprint
    assert after.data_hash == before.data_hash
    assert (before.parameters["policy_version"], after.parameters["policy_version"]) == (0, 1)
    assert after.parameters["policy"]["risk_aversion"]["1"] == 12.0
    cautious = after.model_portfolios.get(risk_level=1)
    default = before.model_portfolios.get(risk_level=1)
    assert cautious.risk_aversion == 12.0 and cautious.volatility < default.volatility
    # levels whose risk aversion did not change get the same portfolio
    assert after.model_portfolios.get(risk_level=5).volatility == before.model_portfolios.get(risk_level=5).volatility
    assert OptimizationRun.objects.count() == 2


def test_the_first_pipeline_run_stores_the_defaults_as_version_1_and_the_environment_no_longer_sets_them(
    funded_alice, settings
) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    from portfolios.services.pipeline import pipeline_run

    # given: the deployment's settings give version 0 a 4-point band
    settings.ADVISOR = {**settings.ADVISOR, "DRIFT_BAND": Decimal("0.04")}
    # when: the pipeline runs for the first time
    pipeline_run()
    # then: both sets are stored as version 1, audited, with the values the settings gave
    stored = {v.name: v for v in ParameterVersion.objects.all()}
    assert {name: v.version for name, v in stored.items()} == {"optimization": 1, "rebalancing": 1}
    assert stored["rebalancing"].values["band_absolute"] == "0.04" and stored["rebalancing"].change is None
    events = AuditEvent.objects.filter(action="parameters.initialized").order_by("id")
    assert [e.payload["name"] for e in events] == ["optimization", "rebalancing"]
    assert events[1].payload["values"] == stored["rebalancing"].values and events[1].actor_id is None
    # and a restart with other settings changes nothing: only a four-eyes change can
    settings.ADVISOR = {**settings.ADVISOR, "DRIFT_BAND": Decimal("0.10")}
    version, policy = rebalancing_policy_current()
    assert (version, policy.band_absolute) == (1, Decimal("0.04"))
    assert parameter_sets_initialize() == []
    assert ParameterVersion.objects.count() == 2

"""Parameter governance: the house parameter sets change only through a four-eyes change.

One admin proposes a whole new set of values with a reason (``parameter_change_propose``); another admin
approves it (``parameter_change_approve``), which stores the next ``ParameterVersion`` and so puts it in force,
or rejects it with a comment (``parameter_change_reject``). The proposer never decides: the service refuses
and a database check (``parameter_change_four_eyes``) backs it. Values are validated as a whole set by the
pure ``portfolios.policy`` when proposed and again when approved; every step is audited with the old and new
value of every key it changes. Approving optimization parameters queues a re-optimization after commit.

Compliance knows portfolios only through the pure ``portfolios.policy`` module (names, validation, defaults)
and the re-optimization task's name; it reads the versions from its own ``ParameterVersion`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from advisor.models import Role
from portfolios.policy import (
    OPTIMIZATION,
    REBALANCING,
    OptimizationPolicy,
    PolicyError,
    RebalancingPolicy,
    default_optimization_policy,
    default_rebalancing_policy,
    policy_from_values,
    policy_values,
)

from .audit import audit_record
from .models import ChangeStatus, ParameterChange, ParameterVersion

PARAMETER_SETS: Final = (OPTIMIZATION, REBALANCING)
SET_LABELS: Final = {OPTIMIZATION: "optimization", REBALANCING: "rebalancing"}
# Queued by name: the task lives in portfolios, which compliance does not import.
REOPTIMIZE_TASK: Final = "portfolios.tasks.reoptimize"


@dataclass(frozen=True)
class ParameterSetState:
    """A parameter set as in force: version 0 is the defaults in code (with the deployment's settings)."""

    name: str
    version: int
    values: dict[str, Any]
    stored: ParameterVersion | None  # None for version 0


# --- selectors ----------------------------------------------------------------------------------------


def _default_values(name: str) -> dict[str, Any]:
    """Version 0: the same defaults as ``portfolios.selectors`` applies when no version is stored (a test
    keeps the two in step)."""
    params = settings.ADVISOR
    policy: OptimizationPolicy | RebalancingPolicy
    if name == OPTIMIZATION:
        policy = default_optimization_policy(
            estimation_years=params["ESTIMATION_YEARS"], max_asset_weight=params["MAX_ASSET_WEIGHT"]
        )
    else:
        policy = default_rebalancing_policy(
            band_absolute=params["DRIFT_BAND"],
            min_trade=params["MIN_TRADE_AMOUNT"],
            cash_threshold_amount=params["CASH_THRESHOLD_AMOUNT"],
            cash_threshold_weight=params["CASH_THRESHOLD_WEIGHT"],
        )
    return policy_values(policy)


def parameter_set_current(name: str) -> ParameterSetState:
    """The version of ``name`` in force and its values: the newest stored version, else the defaults (0)."""
    stored = (
        ParameterVersion.objects.filter(name=name)
        .select_related("change__proposed_by", "change__decided_by")
        .order_by("-version")
        .first()
    )
    if stored is None:
        return ParameterSetState(name, 0, _default_values(name), None)
    return ParameterSetState(name, stored.version, dict(stored.values), stored)


def parameter_sets_initialize() -> list[ParameterVersion]:
    """Store version 1 of every set that has none, from the defaults in force (the code's, with the deployment's
    settings), audited as ``parameters.initialized``; return the versions stored.

    Called before the parameters are first used (each pipeline run, each re-optimization): from then on the
    environment no longer sets the policy, so a restart with other settings cannot change it unaudited; only a
    four-eyes change can. A concurrent initialization of the same set stores nothing more.
    """
    stored: list[ParameterVersion] = []
    for name in PARAMETER_SETS:
        if ParameterVersion.objects.filter(name=name).exists():
            continue
        values = _default_values(name)
        try:
            with transaction.atomic():
                version = ParameterVersion.objects.create(
                    name=name, version=1, values=values, created_at=timezone.now()
                )
                audit_record(
                    actor=None,
                    action="parameters.initialized",
                    obj=version,
                    payload={"name": name, "version": 1, "values": values, "source": "defaults and settings"},
                )
        except IntegrityError:
            continue  # another process stored version 1 first
        stored.append(version)
    return stored


def parameter_sets_current() -> dict[str, ParameterSetState]:
    """Both parameter sets in force, by name."""
    return {name: parameter_set_current(name) for name in PARAMETER_SETS}


def parameter_versions_history(*, limit: int = 50) -> list[ParameterVersion]:
    """Stored versions of every set, newest first, with who proposed and who approved them."""
    return list(
        ParameterVersion.objects.select_related("change__proposed_by", "change__decided_by").order_by(
            "-created_at", "-id"
        )[:limit]
    )


def parameter_changes_recent(*, limit: int = 50) -> list[ParameterChange]:
    """Changes of every set and status, newest proposal first."""
    return list(
        ParameterChange.objects.select_related("proposed_by", "decided_by", "version_created").order_by(
            "-proposed_at", "-id"
        )[:limit]
    )


def parameter_changes_pending() -> list[ParameterChange]:
    """Changes awaiting a second admin (at most one per set)."""
    return list(
        ParameterChange.objects.filter(status=ChangeStatus.PENDING)
        .select_related("proposed_by")
        .order_by("name", "proposed_at")
    )


def parameter_change_diffs(changes: list[ParameterChange]) -> dict[int, dict[str, dict[str, Any]]]:
    """What each change changes against the version it was proposed on (one query for all of them)."""
    wanted = {(c.name, c.base_version) for c in changes if c.base_version > 0}
    stored: dict[tuple[str, int], dict[str, Any]] = {}
    if wanted:
        names = {name for name, _ in wanted}
        numbers = {number for _, number in wanted}
        for name, number, values in ParameterVersion.objects.filter(name__in=names, version__in=numbers).values_list(
            "name", "version", "values"
        ):
            stored[(name, number)] = values
    defaults = {name: _default_values(name) for name in PARAMETER_SETS}
    return {
        c.pk: parameter_diff(stored.get((c.name, c.base_version), defaults.get(c.name, {})), c.values) for c in changes
    }


def parameter_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The top-level keys whose values differ, each with its old and new value (None where absent)."""
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


# --- services ----------------------------------------------------------------------------------------


def _require_admin(actor: Any, doing: str) -> None:
    if getattr(actor, "role", None) != Role.ADMIN:
        raise NotAllowedError(f"Only an admin can {doing} parameter changes.")


def _validated(name: str, values: Any) -> dict[str, Any]:
    """The set in its canonical form (as ``policy_values`` writes it), or ``PolicyError``."""
    return policy_values(policy_from_values(name, values))


def _value_fields(error: PolicyError) -> dict[str, str]:
    # Prefixed so a form or an API client can tell a bad parameter from a bad reason or set name.
    return {key if key in ("name", "values") else f"values.{key}": message for key, message in error.fields.items()}


def parameter_change_propose(*, actor: Any, name: str, values: Any, reason: str) -> ParameterChange:
    """Propose a whole new set of values for ``name`` against the version in force, for another admin to
    decide. Refused: a non-admin, invalid values (every bad field named), no reason, values equal to those in
    force, or a change to the same set already pending."""
    _require_admin(actor, "propose")
    reason = (reason or "").strip()
    fields: dict[str, str] = {}
    canonical: dict[str, Any] = {}
    if name not in PARAMETER_SETS:
        fields["name"] = f"Choose {OPTIMIZATION} or {REBALANCING}."
    else:
        try:
            canonical = _validated(name, values)
        except PolicyError as exc:
            fields.update(_value_fields(exc))
    if not reason:
        fields["reason"] = "Give the reason for the change."
    if fields:
        raise InvalidInputError("The parameter change is not valid.", fields=fields)
    pending = InvalidStateError(
        f"A change to the {name} parameters is already pending: approve or reject it first.",
        fields={"name": f"A change to the {name} parameters is already pending."},
    )
    with transaction.atomic():
        current = parameter_set_current(name)
        changes = parameter_diff(current.values, canonical)
        if not changes:
            raise InvalidInputError(
                "Nothing would change.",
                fields={"values": f"These are the values of version {current.version}, already in force."},
            )
        try:
            # A savepoint: a concurrent proposal for the same set, caught by the one-pending constraint,
            # leaves the caller's transaction usable.
            with transaction.atomic():
                change = ParameterChange.objects.create(
                    name=name,
                    base_version=current.version,
                    values=canonical,
                    reason=reason,
                    status=ChangeStatus.PENDING,
                    proposed_by=actor,
                    proposed_at=timezone.now(),
                )
        except IntegrityError:
            raise pending from None
        audit_record(
            actor=actor,
            action="parameters.change_proposed",
            obj=change,
            payload={"name": name, "base_version": current.version, "reason": reason, "changes": changes},
        )
    return change


def _locked_pending(change_id: int) -> ParameterChange:
    change = ParameterChange.objects.select_for_update().filter(pk=change_id).first()
    if change is None:
        raise InvalidInputError(f"No parameter change #{change_id}.", fields={"change": "No such change."})
    if change.status != ChangeStatus.PENDING:
        raise InvalidStateError(f"This change was already {change.status}.")
    return change


def _decided(change: ParameterChange, *, actor: Any, status: str, comment: str, when: datetime) -> None:
    change.status = status
    change.decided_by = actor
    change.decided_at = when
    change.decision_comment = comment
    change.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])


def _queue_reoptimization(actor_id: int) -> None:
    from advisor.celery import app

    app.signature(REOPTIMIZE_TASK, args=(actor_id,)).delay()


def parameter_change_approve(*, actor: Any, change_id: int, comment: str = "") -> ParameterVersion:
    """Approve a pending change (another admin than its proposer): its values become the next version, in
    force at once. Refused when another version was approved since it was proposed (stale), or when its
    values no longer validate. Optimization parameters queue a re-optimization after commit."""
    _require_admin(actor, "approve")
    comment = (comment or "").strip()
    with transaction.atomic():
        change = _locked_pending(change_id)
        if change.proposed_by_id == actor.pk:
            raise NotAllowedError("You proposed this change: another admin must approve or reject it (four eyes).")
        current = parameter_set_current(change.name)
        if current.version != change.base_version:
            raise InvalidStateError(
                f"This change was proposed against version {change.base_version} of the {change.name} parameters, "
                f"but version {current.version} is in force now: reject it and propose again from the values "
                "in force."
            )
        try:
            values = _validated(change.name, change.values)
        except PolicyError as exc:
            raise InvalidStateError(
                "The proposed values are no longer valid: reject the change and propose again.",
                fields=_value_fields(exc),
            ) from None
        now = timezone.now()
        try:
            with transaction.atomic():
                version = ParameterVersion.objects.create(
                    name=change.name, version=current.version + 1, values=values, change=change, created_at=now
                )
        except IntegrityError:
            # Another version with this number was stored since we read the current one.
            raise InvalidStateError(
                f"Another version of the {change.name} parameters was stored meanwhile: reject this change and "
                "propose again."
            ) from None
        _decided(change, actor=actor, status=ChangeStatus.APPROVED, comment=comment, when=now)
        audit_record(
            actor=actor,
            action="parameters.changed",
            obj=change,
            payload={
                "name": change.name,
                "old_version": current.version,
                "new_version": version.version,
                "proposed_by": change.proposed_by_id,
                "comment": comment,
                "changes": parameter_diff(current.values, values),
            },
        )
        if change.name == OPTIMIZATION:
            actor_id = actor.pk
            transaction.on_commit(lambda: _queue_reoptimization(actor_id))
    return version


def parameter_change_reject(*, actor: Any, change_id: int, comment: str) -> ParameterChange:
    """Reject a pending change with a comment (another admin than its proposer); nothing else changes."""
    _require_admin(actor, "reject")
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInputError("Say why the change is rejected.", fields={"comment": "Give the reason."})
    with transaction.atomic():
        change = _locked_pending(change_id)
        if change.proposed_by_id == actor.pk:
            raise NotAllowedError("You proposed this change: another admin must approve or reject it (four eyes).")
        _decided(change, actor=actor, status=ChangeStatus.REJECTED, comment=comment, when=timezone.now())
        audit_record(
            actor=actor,
            action="parameters.change_rejected",
            obj=change,
            payload={
                "name": change.name,
                "base_version": change.base_version,
                "proposed_by": change.proposed_by_id,
                "comment": comment,
            },
        )
    return change

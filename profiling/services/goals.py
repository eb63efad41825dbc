"""Goals and preferences: validated, versioned or audited with old and new values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from advisor.errors import InvalidInputError, NotAllowedError
from advisor.models import User
from compliance.audit import audit_record
from portfolios.universe import ESG_FLAGS

from ..models import Goal, GoalType, LiquidityNeed, Preferences
from .profile import profile_apply_goal_cap

MAX_AMOUNT = Decimal("100000000.00")
ACCOUNT_TYPES = ("taxable", "traditional_ira", "roth_ira")
MAX_TAX_RATE = Decimal("0.6")
GOAL_FIELDS = ("goal_type", "name", "target_amount", "target_date", "initial_amount", "monthly_contribution",
               "priority", "account_id")  # fmt: skip


def _amount(value: object, field: str, errors: dict[str, str], *, positive: bool) -> Decimal | None:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors[field] = f"'{value}' is not a number."
        return None
    if not amount.is_finite():
        errors[field] = "Must be a finite number."
    elif positive and amount <= 0:
        errors[field] = "Must be greater than zero."
    elif amount < 0:
        errors[field] = "Must not be negative."
    elif amount != amount.quantize(Decimal("0.01")):
        errors[field] = "At most two decimal places (cents)."
    elif amount > MAX_AMOUNT:
        errors[field] = f"At most {MAX_AMOUNT:,}."
    else:
        return amount.quantize(Decimal("0.01"))
    return None


def validate_goal(investor: User, data: Mapping[str, Any], *, today: date | None = None) -> dict[str, Any]:
    """Clean goal fields or raise ``InvalidInputError`` with a message per field."""
    today = today or timezone.localdate()
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    goal_type = data.get("goal_type")
    if goal_type not in GoalType.values:
        errors["goal_type"] = f"One of: {', '.join(GoalType.values)}."
    clean["goal_type"] = goal_type
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the goal a name."
    elif len(name) > 80:
        errors["name"] = "At most 80 characters."
    clean["name"] = name
    clean["target_amount"] = _amount(data.get("target_amount"), "target_amount", errors, positive=True)
    clean["initial_amount"] = _amount(data.get("initial_amount", "0"), "initial_amount", errors, positive=False)
    clean["monthly_contribution"] = _amount(
        data.get("monthly_contribution", "0"), "monthly_contribution", errors, positive=False
    )
    raw_date = data.get("target_date")
    try:
        target_date = raw_date if isinstance(raw_date, date) else date.fromisoformat(str(raw_date))
    except ValueError:
        errors["target_date"] = f"'{raw_date}' is not a date (YYYY-MM-DD)."
    else:
        if target_date <= today:
            errors["target_date"] = "The target date must be in the future."
        elif target_date.year > today.year + 100:
            errors["target_date"] = "At most 100 years ahead."
        clean["target_date"] = target_date
    try:
        priority = int(str(data.get("priority", 3)))
    except ValueError:
        priority = 0
    if not 1 <= priority <= 5:
        errors["priority"] = "A whole number from 1 (most important) to 5."
    clean["priority"] = priority
    account_id = data.get("account") or data.get("account_id")
    if account_id in (None, ""):
        clean["account_id"] = None
    elif not investor.accounts.filter(pk=str(account_id)).exists() if str(account_id).isdigit() else True:
        errors["account"] = "Choose one of your accounts."
    else:
        clean["account_id"] = int(str(account_id))
    if errors:
        raise InvalidInputError("Invalid goal.", fields=errors)
    return clean


def _goal_payload(goal: Goal) -> dict[str, Any]:
    return {f: getattr(goal, f) for f in GOAL_FIELDS} | {"is_active": goal.is_active}


def goal_create(*, investor: User, data: Mapping[str, Any]) -> Goal:
    if not investor.is_investor:
        raise NotAllowedError("Only investors have goals.")
    clean = validate_goal(investor, data)
    with transaction.atomic():
        goal = Goal.objects.create(investor=investor, **clean)
        audit_record(
            actor=investor, action="goal.created", obj=goal, subject_id=investor.pk, payload=_goal_payload(goal)
        )
        profile_apply_goal_cap(investor=investor, actor=investor)
    return goal


def goal_update(*, investor: User, goal_id: int, data: Mapping[str, Any]) -> Goal:
    from .behaviour_hooks import contributions_changed

    clean = validate_goal(investor, data)
    with transaction.atomic():
        goal = Goal.objects.select_for_update().filter(pk=goal_id, investor=investor, is_active=True).first()
        if goal is None:
            raise NotAllowedError("No such goal.")
        old = _goal_payload(goal)
        for field, value in clean.items():
            setattr(goal, field, value)
        goal.save()
        audit_record(
            actor=investor, action="goal.updated", obj=goal, subject_id=investor.pk,
            payload={"old": old, "new": _goal_payload(goal)},
        )  # fmt: skip
        contributions_changed(investor=investor, old=old["monthly_contribution"], new=goal.monthly_contribution)
        profile_apply_goal_cap(investor=investor, actor=investor)
    return goal


def goal_deactivate(*, investor: User, goal_id: int) -> Goal:
    with transaction.atomic():
        goal = Goal.objects.select_for_update().filter(pk=goal_id, investor=investor, is_active=True).first()
        if goal is None:
            raise NotAllowedError("No such goal.")
        goal.is_active = False
        goal.save(update_fields=["is_active", "updated_at"])
        audit_record(
            actor=investor, action="goal.removed", obj=goal, subject_id=investor.pk, payload=_goal_payload(goal)
        )
        profile_apply_goal_cap(investor=investor, actor=investor)
    return goal


def preferences_current(investor: User) -> Preferences | None:
    return Preferences.objects.filter(investor=investor).order_by("-version").first()


def preferences_update(*, investor: User, data: Mapping[str, Any]) -> Preferences:
    """Validate and store a new preferences version (ESG exclusions, tax status, liquidity need)."""
    if not investor.is_investor:
        raise NotAllowedError("Only investors have preferences.")
    errors: dict[str, str] = {}
    exclusions = list(data.get("esg_exclusions") or [])
    unknown = [e for e in exclusions if e not in ESG_FLAGS]
    if unknown:
        errors["esg_exclusions"] = f"Unknown exclusions {unknown}; choose from {sorted(ESG_FLAGS)}."
    account_types = list(data.get("account_types") or ["taxable"])
    if not account_types or any(t not in ACCOUNT_TYPES for t in account_types):
        errors["account_types"] = f"Choose from {list(ACCOUNT_TYPES)}."
    try:
        rate = Decimal(str(data.get("marginal_tax_rate", "")).strip())
        if not rate.is_finite() or not Decimal(0) <= rate <= MAX_TAX_RATE:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["marginal_tax_rate"] = "A rate from 0 to 0.6 (for example 0.24 for a 24% bracket)."
        rate = Decimal(0)
    liquidity = data.get("liquidity_need", LiquidityNeed.NONE)
    if liquidity not in LiquidityNeed.values:
        errors["liquidity_need"] = f"One of: {', '.join(LiquidityNeed.values)}."
    if errors:
        raise InvalidInputError("Invalid preferences.", fields=errors)
    with transaction.atomic():
        User.objects.select_for_update().get(pk=investor.pk)
        previous = preferences_current(investor)
        preferences = Preferences.objects.create(
            investor=investor,
            version=(previous.version if previous else 0) + 1,
            esg_exclusions=sorted(set(exclusions)),
            account_types=sorted(set(account_types)),
            marginal_tax_rate=rate.quantize(Decimal("0.0001")),
            liquidity_need=liquidity,
            created_by=investor,
        )
        new = {
            "esg_exclusions": preferences.esg_exclusions,
            "account_types": preferences.account_types,
            "marginal_tax_rate": preferences.marginal_tax_rate,
            "liquidity_need": preferences.liquidity_need,
        }
        old = (
            {
                k: getattr(previous, k)
                for k in ("esg_exclusions", "account_types", "marginal_tax_rate", "liquidity_need")
            }
            if previous
            else None
        )
        audit_record(
            actor=investor, action="preferences.updated", obj=preferences, subject_id=investor.pk,
            payload={"version": preferences.version, "old": old, "new": new},
        )  # fmt: skip
    return preferences

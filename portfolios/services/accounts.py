from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction

from advisor.errors import InvalidInputError, NotAllowedError
from advisor.models import User
from compliance.audit import audit_record

from ..models import Account, AccountType, CashMovement, CashMovementKind

MAX_DEPOSIT = Decimal("10000000.00")


def account_open(*, owner: User, name: str = "Taxable account") -> Account:
    if not owner.is_investor:
        raise NotAllowedError("Only investors hold accounts.")
    with transaction.atomic():
        account = Account.objects.create(owner=owner, name=name, account_type=AccountType.TAXABLE)
        audit_record(
            actor=owner,
            action="account.opened",
            obj=account,
            subject_id=owner.pk,
            payload={"name": name, "account_type": account.account_type},
        )
    return account


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """A positive amount in dollars with at most two decimals, up to the deposit limit."""
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise InvalidInputError("Invalid amount.", fields={field: f"'{value}' is not a number."}) from None
    if not amount.is_finite():
        raise InvalidInputError("Invalid amount.", fields={field: "Must be a finite number."})
    if amount <= 0:
        raise InvalidInputError("Invalid amount.", fields={field: "Must be greater than zero."})
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInputError("Invalid amount.", fields={field: "At most two decimal places (cents)."})
    if amount > MAX_DEPOSIT:
        raise InvalidInputError("Invalid amount.", fields={field: f"At most {MAX_DEPOSIT:,} per deposit."})
    return amount


def account_deposit(*, account: Account, amount: object, actor: User) -> CashMovement:
    """A simulated deposit into the investor's own account."""
    from profiling.services.behaviour_hooks import deposit_made

    if actor.pk != account.owner_id:
        raise NotAllowedError("Only the account's owner can deposit into it.")
    value = parse_amount(amount)
    with transaction.atomic():
        movement = CashMovement.objects.create(
            account=account, kind=CashMovementKind.DEPOSIT, amount=value, description="Simulated deposit"
        )
        audit_record(
            actor=actor,
            action="account.deposit",
            obj=account,
            subject_id=account.owner_id,
            payload={"amount": value, "cash_movement_id": movement.pk},
        )
        deposit_made(investor=actor, account_id=account.pk, amount=value)
    return movement

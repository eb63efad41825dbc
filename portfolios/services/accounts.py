"""Opening accounts and one-off deposits. Recurring deposits and withdrawals are in ``cashflows.py``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction

from advisor.errors import InvalidInputError, NotAllowedError
from advisor.models import User
from compliance.audit import audit_record

from ..models import TAX_ADVANTAGED_ACCOUNT_TYPES, Account, AccountType, CashMovement, CashMovementKind, LotMethod

MAX_DEPOSIT = Decimal("10000000.00")
ACCOUNT_NAME_MAX_LENGTH = 80

# What an account is called when the investor does not name it; a second one of a type gets " 2" and so on.
DEFAULT_ACCOUNT_NAMES = {
    AccountType.TAXABLE: "Taxable account",
    AccountType.TRADITIONAL_IRA: "Traditional IRA",
    AccountType.ROTH_IRA: "Roth IRA",
}


def lot_method_for(account_type: str) -> str:
    """Taxable accounts sell the lots that cost the least tax now; in an IRA no sale is taxed, so the order of
    lots does not matter and first in, first out is the simplest to explain."""
    return LotMethod.FIFO if account_type in TAX_ADVANTAGED_ACCOUNT_TYPES else LotMethod.TAX_MINIMIZING


def account_lock(account_id: int) -> Account:
    """The account row, locked until the transaction ends: every change to its cash runs one after another,
    so a balance read under the lock stays true until commit (the broker's ``order_fill`` takes the same lock)."""
    return Account.objects.select_for_update().get(pk=account_id)


def _free_default_name(taken: set[str], account_type: str) -> str:
    base = DEFAULT_ACCOUNT_NAMES[AccountType(account_type)]
    name, number = base, 1
    while name.casefold() in taken:
        number += 1
        name = f"{base} {number}"
    return name


def account_open(
    *, owner: User, name: str | None = None, account_type: str = AccountType.TAXABLE, actor: User | None = None
) -> Account:
    """Open an account of ``account_type`` for an investor; names are unique per investor (case-insensitive).

    Without a name the account gets its type's default name, numbered if the investor already uses it.
    """
    actor = actor or owner
    if not owner.is_investor:
        raise NotAllowedError("Only investors hold accounts.")
    if actor.pk != owner.pk:
        raise NotAllowedError("Investors open their own accounts.")
    if account_type not in AccountType.values:
        choices = ", ".join(AccountType.values)
        raise InvalidInputError("Invalid account type.", fields={"account_type": f"Choose one of: {choices}."})
    wanted = None if name is None else " ".join(str(name).split())
    if wanted is not None and not wanted:
        raise InvalidInputError("Invalid name.", fields={"name": "Give the account a name."})
    if wanted is not None and len(wanted) > ACCOUNT_NAME_MAX_LENGTH:
        raise InvalidInputError("Invalid name.", fields={"name": f"At most {ACCOUNT_NAME_MAX_LENGTH} characters."})
    with transaction.atomic():
        # Two requests opening the same name at once: the second waits here, then sees the first's account.
        User.objects.select_for_update().only("pk").get(pk=owner.pk)
        taken = {n.casefold() for n in Account.objects.filter(owner=owner).values_list("name", flat=True)}
        if wanted is None:
            wanted = _free_default_name(taken, account_type)
        elif wanted.casefold() in taken:
            raise InvalidInputError("Name taken.", fields={"name": f"You already have an account named '{wanted}'."})
        account = Account.objects.create(
            owner=owner, name=wanted, account_type=account_type, lot_method=lot_method_for(account_type)
        )
        audit_record(
            actor=actor,
            action="account.opened",
            obj=account,
            subject_id=owner.pk,
            payload={"name": wanted, "account_type": account.account_type, "lot_method": account.lot_method},
        )
    return account


def parse_amount(
    value: object, *, field: str = "amount", limit: Decimal = MAX_DEPOSIT, per: str = "deposit"
) -> Decimal:
    """A positive amount in dollars with at most two decimals, up to ``limit`` (per deposit by default)."""
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise InvalidInputError("Invalid amount.", fields={field: f"'{value}' is not a number."}) from None
    if not amount.is_finite():
        raise InvalidInputError("Invalid amount.", fields={field: "Must be a finite number."})
    if amount <= 0:
        raise InvalidInputError("Invalid amount.", fields={field: "Must be greater than zero."})
    # The limit first: quantizing a huge number ("1e400") to cents overflows the decimal context.
    if amount > limit:
        raise InvalidInputError("Invalid amount.", fields={field: f"At most {limit:,} per {per}."})
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInputError("Invalid amount.", fields={field: "At most two decimal places (cents)."})
    return amount


def account_deposit(*, account: Account, amount: object, actor: User) -> CashMovement:
    """A simulated deposit into the investor's own account."""
    from profiling.services.behaviour_hooks import deposit_made

    if actor.pk != account.owner_id:
        raise NotAllowedError("Only the account's owner can deposit into it.")
    value = parse_amount(amount)
    with transaction.atomic():
        account_lock(account.pk)
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

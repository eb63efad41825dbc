"""Opening accounts: types, lot methods, names unique per investor, who may open, the audit row."""

from __future__ import annotations

from decimal import Decimal

import pytest

from advisor.errors import InvalidInputError, NotAllowedError
from advisor.services import investor_signup
from compliance.models import AuditEvent
from portfolios.models import Account, AccountType, CashMovement, LotMethod
from portfolios.services.accounts import account_deposit, account_open

pytestmark = pytest.mark.django_db


def audit_rows(since: int) -> list[tuple[object, ...]]:
    return list(
        AuditEvent.objects.filter(pk__gt=since)
        .order_by("pk")
        .values_list("action", "actor_id", "object_type", "object_id", "subject_id", "payload")
    )


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.parametrize(
    ("account_type", "lot_method"),
    [
        (AccountType.TAXABLE, LotMethod.TAX_MINIMIZING),
        (AccountType.TRADITIONAL_IRA, LotMethod.FIFO),
        (AccountType.ROTH_IRA, LotMethod.FIFO),
    ],
)
def test_each_type_opens_with_its_lot_method_and_one_audit_row(alice, account_type, lot_method) -> None:  # type: ignore[no-untyped-def]
    since = last_event_id()

    account = account_open(owner=alice, name="  My   savings ", account_type=account_type, actor=alice)

    assert (account.owner, account.name, account.account_type, account.lot_method, account.book) == (
        alice,
        "My savings",
        account_type,
        lot_method,
        "live",
    )
    assert audit_rows(since) == [
        (
            "account.opened",
            alice.pk,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"name": "My savings", "account_type": str(account_type), "lot_method": str(lot_method)},
        )
    ]


def test_several_accounts_of_one_type_each_with_its_own_name(alice) -> None:  # type: ignore[no-untyped-def]
    first = account_open(owner=alice)
    second = account_open(owner=alice)
    roth = account_open(owner=alice, account_type=AccountType.ROTH_IRA)
    other_roth = account_open(owner=alice, account_type=AccountType.ROTH_IRA, name="Roth for the kids")

    assert [a.name for a in (first, second, roth, other_roth)] == [
        "Taxable account",
        "Taxable account 2",
        "Roth IRA",
        "Roth for the kids",
    ]
    assert Account.objects.filter(owner=alice).count() == 4


def test_signup_still_opens_the_first_taxable_account() -> None:
    investor = investor_signup(email="new@example.com", password="a-long-password-1")

    account = investor.accounts.get()
    assert (account.name, account.account_type, account.lot_method) == (
        "Taxable account",
        AccountType.TAXABLE,
        LotMethod.TAX_MINIMIZING,
    )


def test_a_name_in_use_is_refused_whatever_its_case_and_nothing_is_written(alice, bob) -> None:  # type: ignore[no-untyped-def]
    account_open(owner=alice, name="Retirement", account_type=AccountType.TRADITIONAL_IRA)
    account_open(owner=bob, name="Retirement")  # another investor's names do not count
    before = (Account.objects.count(), AuditEvent.objects.count())

    with pytest.raises(InvalidInputError) as refused:
        account_open(owner=alice, name="retirement", account_type=AccountType.ROTH_IRA)

    assert refused.value.fields == {"name": "You already have an account named 'retirement'."}
    assert (Account.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"account_type": "401k"}, {"account_type": "Choose one of: taxable, traditional_ira, roth_ira."}),
        ({"name": "   "}, {"name": "Give the account a name."}),
        ({"name": "x" * 81}, {"name": "At most 80 characters."}),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(alice, kwargs, fields) -> None:  # type: ignore[no-untyped-def]
    before = (Account.objects.count(), AuditEvent.objects.count())

    with pytest.raises(InvalidInputError) as refused:
        account_open(owner=alice, **kwargs)

    assert refused.value.fields == fields
    assert (Account.objects.count(), AuditEvent.objects.count()) == before


def test_only_investors_open_accounts_and_only_their_own(alice, bob, carol, erin) -> None:  # type: ignore[no-untyped-def]
    before = (Account.objects.count(), AuditEvent.objects.count())

    with pytest.raises(NotAllowedError, match="Only investors hold accounts"):
        account_open(owner=carol)
    with pytest.raises(NotAllowedError, match="Only investors hold accounts"):
        account_open(owner=erin, actor=erin)
    for actor in (bob, carol, erin):
        with pytest.raises(NotAllowedError, match="Investors open their own accounts"):
            account_open(owner=alice, account_type=AccountType.ROTH_IRA, actor=actor)

    assert (Account.objects.count(), AuditEvent.objects.count()) == before


def test_a_one_off_deposit_is_still_the_owners_and_audited(alice, bob) -> None:  # type: ignore[no-untyped-def]
    account = account_open(owner=alice, account_type=AccountType.ROTH_IRA)
    since = last_event_id()

    movement = account_deposit(account=account, amount="1,500.25", actor=alice)
    with pytest.raises(NotAllowedError):
        account_deposit(account=account, amount="10", actor=bob)

    assert (movement.kind, movement.amount) == ("deposit", Decimal("1500.25"))
    assert list(CashMovement.objects.filter(account=account).values_list("amount", flat=True)) == [Decimal("1500.25")]
    assert audit_rows(since) == [
        (
            "account.deposit",
            alice.pk,
            "portfolios.account",
            str(account.pk),
            alice.pk,
            {"amount": "1500.25", "cash_movement_id": movement.pk},
        )
    ]

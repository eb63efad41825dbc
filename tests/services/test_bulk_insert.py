"""advisor/db.py: the COPY-based bulk insert stores what bulk_create would, defaults and JSON included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from advisor.db import bulk_insert, reserve_ids
from portfolios.models import LIVE_BOOK, Account, AccountType, LotMethod
from profiling.models import Preferences

pytestmark = pytest.mark.django_db


def test_reserved_ids_are_new_and_rows_get_the_defaults_of_the_fields_not_given(alice) -> None:  # type: ignore[no-untyped-def]
    # given
    ids = reserve_ids(Account, 2)
    # when
    written = bulk_insert(
        Account,
        ["id", "owner", "name", "account_type"],
        [(ids[0], alice.pk, "Brokerage", AccountType.TAXABLE), (ids[1], alice.pk, "IRA", AccountType.ROTH_IRA)],
    )
    # then
    assert written == 2 and ids[0] < ids[1]
    accounts = list(Account.objects.filter(pk__in=ids).order_by("pk"))
    assert [(a.pk, a.name, a.account_type) for a in accounts] == [
        (ids[0], "Brokerage", AccountType.TAXABLE),
        (ids[1], "IRA", AccountType.ROTH_IRA),
    ]
    assert all(a.book == LIVE_BOOK and a.lot_method == LotMethod.TAX_MINIMIZING for a in accounts)
    assert all(a.created_at is not None for a in accounts)  # auto_now_add
    assert Account.objects.create(owner=alice, name="next").pk > ids[1]  # the sequence moved past them


def test_json_fields_are_encoded_as_django_encodes_them(alice) -> None:  # type: ignore[no-untyped-def]
    # when
    bulk_insert(
        Preferences,
        ["investor_id", "version", "esg_exclusions", "marginal_tax_rate"],
        [(alice.pk, 1, ["tobacco", "weapons"], Decimal("0.24"))],
    )
    # then
    stored = Preferences.objects.get(investor=alice)
    assert stored.esg_exclusions == ["tobacco", "weapons"]
    assert stored.account_types == [] and stored.marginal_tax_rate == Decimal("0.2400")
    assert Preferences.objects.filter(investor=alice, esg_exclusions__1="weapons").exists()  # stored as JSON, not text


def test_a_name_that_is_not_a_column_is_refused(alice) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not a column"):
        bulk_insert(Account, ["lots"], [([],)])
    assert not Account.objects.exists()

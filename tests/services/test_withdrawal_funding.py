"""Withdrawals funded by sales: the limit leaves room for what selling costs, a request the sales cannot cover is
paid once nothing is left to sell, and the broker never spends cash promised to a pending withdrawal.

Trades happen after the shipped prices end (2026-07-31), at closes the tests set; the trading cost is 0.05%.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import AccountType, CashMovement, CashMovementKind, Order, WithdrawalRequest, WithdrawalStatus
from portfolios.selectors import cash_balances
from portfolios.services.cashflows import account_worth, withdrawal_request, withdrawals_settle
from tests.services.trading import prices_set, trade

pytestmark = pytest.mark.django_db

D = Decimal
DAY_1, DAY_2 = date(2026, 8, 3), date(2026, 8, 4)


@pytest.fixture
def invested(funded_alice, carol):  # type: ignore[no-untyped-def]
    """Alice's $100,000 account holding 900 SPY bought at $100 (cost $90,045.00), $9,955.00 in cash."""
    account = funded_alice.accounts.get(account_type=AccountType.TAXABLE)
    prices_set(DAY_1, {"SPY": "100"})
    trade(account, carol, DAY_1, ("buy", "SPY", "900"))
    assert cash_balances([account.pk])[account.pk] == D("9955.00")
    return account


def test_the_whole_value_less_selling_costs_can_be_withdrawn_and_is_paid_once_the_sale_fills(
    invested, funded_alice, carol
) -> None:  # type: ignore[no-untyped-def]
    # given: the most that may be asked for is what selling everything would raise, plus the cash
    worth = account_worth(invested.pk)
    assert (worth.value, worth.selling_costs, worth.withdrawable) == (D("99955.00"), D("45.00"), D("99910.00"))
    request = withdrawal_request(account=invested, amount="99910.00", actor=funded_alice)
    assert request.status == WithdrawalStatus.PENDING  # the cash does not cover it
    # when: the sale of every share fills at the same close
    prices_set(DAY_2, {"SPY": "100"})
    trade(invested, carol, DAY_2, ("sell", "SPY", "900"))
    # then: the sale raised exactly the rest, and the request is paid in full, once
    request.refresh_from_db()
    assert request.status == WithdrawalStatus.COMPLETED and request.note == ""
    assert cash_balances([invested.pk])[invested.pk] == D("0.00")
    paid = CashMovement.objects.get(withdrawal=request)
    assert paid.amount == D("-99910.00") and paid.kind == CashMovementKind.WITHDRAWAL
    assert withdrawals_settle(account_id=invested.pk) == []


def test_a_request_the_sales_cannot_cover_is_paid_in_part_once_nothing_is_left_to_sell(
    invested, funded_alice, carol
) -> None:  # type: ignore[no-untyped-def]
    # given: everything asked for, then the price falls 10% before the sale
    request = withdrawal_request(account=invested, amount="99910.00", actor=funded_alice)
    prices_set(DAY_2, {"SPY": "90"})
    # when: every share is sold (900 x $90 = $81,000 less $40.50 of cost)
    trade(invested, carol, DAY_2, ("sell", "SPY", "900"))
    # then: with no shares and no open recommendation left, the cash raised is paid and the shortfall noted
    request.refresh_from_db()
    assert request.status == WithdrawalStatus.COMPLETED
    assert request.note == "paid $90,914.50 of $99,910.00: nothing left to sell"
    assert CashMovement.objects.get(withdrawal=request).amount == D("-90914.50")
    assert cash_balances([invested.pk])[invested.pk] == D("0.00")


def test_a_request_waits_while_shares_are_left_to_sell(invested, funded_alice) -> None:  # type: ignore[no-untyped-def]
    request = withdrawal_request(account=invested, amount="20000.00", actor=funded_alice)
    assert withdrawals_settle(account_id=invested.pk) == []
    request.refresh_from_db()
    assert request.status == WithdrawalStatus.PENDING
    assert not CashMovement.objects.filter(withdrawal=request).exists()


def test_the_broker_does_not_spend_cash_promised_to_a_pending_withdrawal(funded_alice, carol) -> None:  # type: ignore[no-untyped-def]
    # given: $100,000 in cash, of which $99,000 is promised to a pending withdrawal (as the queue leaves it when
    # an earlier request waits)
    account = funded_alice.accounts.get(account_type=AccountType.TAXABLE)
    waiting = WithdrawalRequest.objects.create(account=account, amount=D("99000.00"), requested_by=funded_alice)
    prices_set(DAY_1, {"SPY": "100"})
    # when: a buy of $5,000 fills
    trade(account, carol, DAY_1, ("buy", "SPY", "50"))
    # then: it is cut to what the $1,000 not promised buys ((1000 - 0.02) / 100.05 shares), leaving the $99,000
    order = Order.objects.get(recommendation__account=account)
    assert order.fill.quantity == D("9.994802")
    assert order.note.endswith("not promised to pending withdrawals ($99,000.00)")
    # and the $99,000 kept back paid the withdrawal when the execution settled it
    waiting.refresh_from_db()
    assert waiting.status == WithdrawalStatus.COMPLETED
    assert cash_balances([account.pk])[account.pk] == D("0.01")

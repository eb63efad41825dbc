"""Who may see and act on what, in one place for the portfolios app."""

from __future__ import annotations

from django.db.models import QuerySet

from advisor.models import Role, User

from .models import Account, Recommendation, RecurringDeposit, WithdrawalRequest


def accounts_for(user: User) -> QuerySet[Account]:
    """Investors see their own accounts, advisors their clients', admins all; anyone else none."""
    accounts = Account.objects.select_related("owner")
    if not user.is_authenticated or not user.is_active:
        return accounts.none()
    if user.role == Role.INVESTOR:
        return accounts.filter(owner=user)
    if user.role == Role.ADVISOR:
        return accounts.filter(owner__advisor=user)
    if user.role == Role.ADMIN:
        return accounts
    return accounts.none()


def clients_for(user: User) -> QuerySet[User]:
    """The investors whose money a user may look at: advisors their assigned clients, admins every investor."""
    investors = User.objects.filter(role=Role.INVESTOR)
    if not user.is_authenticated or not user.is_active:
        return investors.none()
    if user.role == Role.ADVISOR:
        return investors.filter(advisor=user)
    if user.role == Role.ADMIN:
        return investors
    return investors.none()


def recommendations_for(user: User) -> QuerySet[Recommendation]:
    return Recommendation.objects.filter(account__in=accounts_for(user)).select_related(
        "account", "account__owner", "model_portfolio"
    )


def recurring_deposits_for(user: User) -> QuerySet[RecurringDeposit]:
    """Schedules of the accounts the user may see."""
    return RecurringDeposit.objects.filter(account__in=accounts_for(user)).select_related("account", "account__owner")


def withdrawals_for(user: User) -> QuerySet[WithdrawalRequest]:
    """Withdrawal requests of the accounts the user may see."""
    return WithdrawalRequest.objects.filter(account__in=accounts_for(user)).select_related("account", "account__owner")


def can_decide(user: User, recommendation: Recommendation) -> bool:
    """Only the advisor assigned to the account's owner approves or rejects."""
    return (
        user.is_authenticated
        and user.role == Role.ADVISOR
        and recommendation.account.owner.advisor_id is not None
        and recommendation.account.owner.advisor_id == user.pk
    )

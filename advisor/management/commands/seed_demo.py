"""Demo users for `make run`: an investor with a funded account, their advisor, and an admin. Idempotent."""

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from advisor.demo import ADMIN, ADVISOR, DEMO_PASSWORD, INVESTOR
from advisor.models import Role, User
from advisor.services import investor_assign_advisor, investor_signup
from portfolios.models import CashMovement
from portfolios.services.accounts import account_deposit, account_open
from profiling.selectors import profile_current
from profiling.services import profile_submit

DEMO_ANSWERS = {
    "age": "30to44",
    "dependents": "one",
    "income": "60to120k",
    "income_stability": "stable",
    "emergency_savings": "6to12",
    "invested_share": "25to50",
    "liquidity_3y": "little",
    "horizon": "10to20",
    "knowledge": "moderate",
    "experience": "some",
    "past_downturn": "held",
    "objective": "growth",
    "fall_10": "hold",
    "fall_20": "hold",
    "fall_35": "hold",
    "sure_gain": "even",
    "trade_off": "medium_range",
}
DEMO_DEPOSIT = Decimal("100000.00")


class Command(BaseCommand):
    help = "Create the demo investor (questionnaire answered, $100,000 deposited), advisor and admin."

    def handle(self, *args: object, **options: object) -> None:
        with transaction.atomic():
            admin = User.objects.filter(email=ADMIN).first() or User.objects.create_superuser(
                email=ADMIN, password=DEMO_PASSWORD, full_name="Ada Admin"
            )
            advisor = User.objects.filter(email=ADVISOR).first() or User.objects.create_user(
                email=ADVISOR, password=DEMO_PASSWORD, full_name="Alex Advisor", role=Role.ADVISOR
            )
            investor = User.objects.filter(email=INVESTOR).first() or investor_signup(
                email=INVESTOR, password=DEMO_PASSWORD, full_name="Ivy Investor"
            )
            if investor.advisor_id != advisor.pk:
                investor_assign_advisor(investor=investor, advisor=advisor, actor=admin)
            if profile_current(investor=investor) is None:
                profile_submit(investor=investor, answers=DEMO_ANSWERS)
            account = investor.accounts.order_by("id").first()
            if account is None:  # a demo investor created before accounts opened at sign-up
                account = account_open(owner=investor)
            if not CashMovement.objects.filter(account=account).exists():
                account_deposit(account=account, amount=DEMO_DEPOSIT, actor=investor)
        self.stdout.write(self.style.SUCCESS("Demo users ready:"))
        for email, role in ((INVESTOR, "investor"), (ADVISOR, "advisor"), (ADMIN, "admin")):
            self.stdout.write(f"  {role:<9} {email:<24} password: {DEMO_PASSWORD}")

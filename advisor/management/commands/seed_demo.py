"""Demo users for `make run`: an investor with a funded account, their advisor, and an admin. Idempotent."""

import random
from datetime import date
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from advisor.demo import ADMIN, ADVISOR, DEMO_PASSWORD, INVESTOR
from advisor.models import Role, User
from advisor.services import investor_assign_advisor, investor_signup
from portfolios.models import CashMovement
from portfolios.services.accounts import account_deposit, account_open
from profiling.scoring import load_definition
from profiling.selectors import profile_current
from profiling.services import goal_create, preferences_update, profile_submit

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
# Peer investors give segmentation a population to learn from; they cannot log in and hold no money.
PEER_PERSONAS = {
    "cautious": (0, 1, 2),
    "balanced": (1, 2, 3),
    "bold": (2, 3, 4),
}


def peer_answers(persona: str, seed: int) -> dict[str, str]:
    """A deterministic response whose answers lean the persona's way."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    choices = PEER_PERSONAS[persona]
    answers = {}
    for question in load_definition().questions:
        points = rng.choice(choices)
        answers[question.key] = next(c.key for c in question.choices if c.points == points)
    return answers


class Command(BaseCommand):
    help = (
        "Create the demo investor (questionnaire answered, a goal and preferences, $100,000 deposited), "
        "their advisor, an admin, and peer investors for segmentation. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--peers", type=int, default=45, help="peer investors to create (default 45)")

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
            if not investor.goals.exists():
                goal_create(
                    investor=investor,
                    data={"goal_type": "retirement", "name": "Retire at 60", "target_amount": "900000",
                          "target_date": date(timezone.localdate().year + 25, 6, 30).isoformat(),
                          "initial_amount": "100000", "monthly_contribution": "1500", "priority": 1,
                          "account": account.pk},
                )  # fmt: skip
            if not investor.preferences.exists():
                preferences_update(
                    investor=investor,
                    # No ESG screen: every broad equity fund of the shipped universe holds tobacco, weapons and
                    # energy issuers, so a screen would leave the demo's level-6 investor without stocks.
                    data={"esg_exclusions": [], "account_types": ["taxable"], "marginal_tax_rate": "0.24",
                          "liquidity_need": "low"},
                )  # fmt: skip
            personas = list(PEER_PERSONAS)
            for n in range(int(options["peers"])):  # type: ignore[call-overload]
                email = f"peer{n:03d}@demo.advisor"
                if User.objects.filter(email=email).exists():
                    continue
                peer = User.objects.create_user(email=email, password=None, full_name=f"Peer {n:03d}")
                profile_submit(investor=peer, answers=peer_answers(personas[n % len(personas)], seed=n))
        self.stdout.write(self.style.SUCCESS("Demo users ready:"))
        for email, role in ((INVESTOR, "investor"), (ADVISOR, "advisor"), (ADMIN, "admin")):
            self.stdout.write(f"  {role:<9} {email:<24} password: {DEMO_PASSWORD}")

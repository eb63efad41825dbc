from __future__ import annotations

import factory

from advisor.models import Role, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    role = Role.INVESTOR
    password = factory.django.Password(PASSWORD)


class InvestorFactory(UserFactory):
    role = Role.INVESTOR


class AdvisorFactory(UserFactory):
    role = Role.ADVISOR


class AdminFactory(UserFactory):
    role = Role.ADMIN
    is_staff = True
    is_superuser = True


# A consistent, middle-of-the-road response to the default questionnaire (2026.2).
BALANCED_ANSWERS = {
    "age": "30to44",
    "dependents": "one",
    "income": "60to120k",
    "income_stability": "stable",
    "emergency_savings": "3to6",
    "invested_share": "25to50",
    "liquidity_3y": "little",
    "horizon": "10to20",
    "knowledge": "moderate",
    "experience": "some",
    "past_downturn": "held",
    "objective": "balanced",
    "fall_10": "hold",
    "fall_20": "hold",
    "fall_35": "hold",
    "sure_gain": "even",
    "trade_off": "medium_range",
}

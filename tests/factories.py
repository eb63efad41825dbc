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


BALANCED_ANSWERS = {
    "horizon": "10to20",
    "age": "30to44",
    "income_stability": "stable",
    "emergency_savings": "3to6",
    "fall_reaction": "hold",
    "experience": "some",
    "objective": "balanced",
    "trade_off": "medium_range",
}

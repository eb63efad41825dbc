"""The custom user: people log in with their email and have exactly one role."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    INVESTOR = "investor", "Investor"
    ADVISOR = "advisor", "Advisor"
    ADMIN = "admin", "Admin / compliance officer"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("role", Role.INVESTOR)
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(role=Role.ADMIN, is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.INVESTOR)
    # The advisor who reviews this investor's recommendations; set by an admin.
    advisor = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="clients",
        limit_choices_to={"role": Role.ADVISOR},
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(advisor__isnull=True) | models.Q(role="investor"),
                name="only_investors_have_an_advisor",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_investor(self) -> bool:
        return self.role == Role.INVESTOR

    @property
    def is_advisor(self) -> bool:
        return self.role == Role.ADVISOR

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

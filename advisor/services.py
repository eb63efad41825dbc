"""Identity operations: sign-up and advisor assignment."""

from __future__ import annotations

from django.db import transaction

from compliance.audit import audit_record
from portfolios.services.accounts import account_open

from .errors import InvalidInputError, NotAllowedError
from .models import Role, User


def investor_signup(*, email: str, password: str, full_name: str = "") -> User:
    """Create an investor with an empty taxable account. Advisors and admins are created by an admin."""
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise InvalidInputError("Email taken.", fields={"email": "An account with this email already exists."})
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=password, full_name=full_name, role=Role.INVESTOR)
        audit_record(actor=user, action="user.signed_up", obj=user, subject_id=user.pk, payload={"email": email})
        account_open(owner=user)
    return user


def investor_assign_advisor(*, investor: User, advisor: User | None, actor: User) -> User:
    if not actor.is_admin:
        raise NotAllowedError("Only admins assign advisors.")
    if not investor.is_investor:
        raise InvalidInputError("Not an investor.", fields={"investor": "Only investors are assigned an advisor."})
    if advisor is not None and not advisor.is_advisor:
        raise InvalidInputError("Not an advisor.", fields={"advisor": "Choose a user with the advisor role."})
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=investor.pk)
        old = locked.advisor_id
        locked.advisor = advisor
        locked.save(update_fields=["advisor"])
        audit_record(
            actor=actor,
            action="investor.advisor_assigned",
            obj=locked,
            subject_id=locked.pk,
            payload={"old_advisor_id": old, "new_advisor_id": advisor.pk if advisor else None},
        )
    return locked

"""Operations that change an investor's profile, goals and preferences: one transaction and one audit event each."""

from .goals import goal_create, goal_deactivate, goal_update, preferences_update
from .profile import (
    profile_apply_goal_cap,
    profile_confirm,
    profile_override,
    profile_review,
    profile_submit,
    questionnaire_definition,
    questionnaire_get,
)

__all__ = [
    "goal_create",
    "goal_deactivate",
    "goal_update",
    "preferences_update",
    "profile_apply_goal_cap",
    "profile_confirm",
    "profile_override",
    "profile_review",
    "profile_submit",
    "questionnaire_definition",
    "questionnaire_get",
]

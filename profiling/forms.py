from __future__ import annotations

from typing import Any

from django import forms

from .scoring import QUESTIONS


class QuestionnaireForm(forms.Form):
    """One required radio group per scored question, built from ``scoring.QUESTIONS``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for question in QUESTIONS:
            self.fields[question.key] = forms.ChoiceField(
                label=question.text,
                choices=[(c.key, c.label) for c in question.choices],
                widget=forms.RadioSelect,
                error_messages={"required": "Please answer this question."},
            )
            self.fields[question.key].dimension = question.dimension.value  # type: ignore[attr-defined]

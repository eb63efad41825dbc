from __future__ import annotations

from typing import Any

from django import forms

from .scoring import Definition, Question


def question_field(question: Question) -> forms.ChoiceField:
    field = forms.ChoiceField(
        label=question.text,
        choices=[(c.key, c.label) for c in question.choices],
        widget=forms.RadioSelect,
        error_messages={"required": "Please answer this question."},
    )
    field.dimension = question.dimension.value  # type: ignore[attr-defined]
    return field


class QuestionnaireForm(forms.Form):
    """One required radio group per question of a questionnaire version (or of one of its sections)."""

    def __init__(self, *args: Any, definition: Definition, section: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for s in definition.sections:
            if section is None or s.key == section:
                for question in s.questions:
                    self.fields[question.key] = question_field(question)

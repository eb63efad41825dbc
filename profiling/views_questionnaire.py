"""The risk questionnaire, one section per step.

Without JavaScript every step is a plain form: POST, then a redirect to
``?step=N`` (post/redirect/get). With htmx the same form posts with ``HX-Request``
and gets back only the step fragment, and the final step answers with
``HX-Redirect``. Either way the answers so far live in the session as a draft
keyed by questionnaire version, so going back shows them and a changed answer is
kept; nothing reaches the database until the last step, and then only a complete
response (``profile_submit`` writes the profile and its audit event).

A POST without a ``step`` field answers every section at once (the one-page form
this flow replaced; scripted clients still use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.forms import ChoiceField
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from advisor.models import Role, User
from advisor.permissions import role_required

from .forms import QuestionnaireForm
from .scoring import Definition
from .selectors import profile_current
from .services import profile_submit, questionnaire_definition, questionnaire_get

DRAFTS_KEY = "questionnaire_drafts"  # session: {version: {question key: choice key}}
PAGE_TEMPLATE = "profiling/questionnaire.html"
STEP_TEMPLATE = "profiling/_questionnaire_step.html"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _is_htmx(request: HttpRequest) -> bool:
    # A history restore asks for the whole page even when it carries HX-Request.
    return request.headers.get("HX-Request") == "true" and "HX-History-Restore-Request" not in request.headers


def _known(definition: Definition, answers: Mapping[str, Any]) -> dict[str, str]:
    keys = {q.key for q in definition.questions}
    return {k: str(v) for k, v in answers.items() if k in keys and v not in (None, "")}


def _draft_get(request: HttpRequest, definition: Definition) -> dict[str, str] | None:
    draft = request.session.get(DRAFTS_KEY, {}).get(definition.version)
    return _known(definition, draft) if isinstance(draft, dict) else None


def _draft_save(request: HttpRequest, version: str, answers: Mapping[str, str]) -> None:
    # A new dict each time: the session notices assignments, not changes inside a stored dict.
    request.session[DRAFTS_KEY] = {**request.session.get(DRAFTS_KEY, {}), version: dict(answers)}


def _draft_clear(request: HttpRequest, version: str) -> None:
    drafts = dict(request.session.get(DRAFTS_KEY, {}))
    drafts.pop(version, None)
    request.session[DRAFTS_KEY] = drafts


def _answers_so_far(request: HttpRequest, definition: Definition) -> dict[str, str]:
    """The draft; without one, the current profile's answers if they were given to this version."""
    draft = _draft_get(request, definition)
    if draft is not None:
        return draft
    current = profile_current(investor=_user(request))
    if current is not None and current.questionnaire_version == definition.version:
        return _known(definition, current.answers)
    return {}


def _step_number(value: str | None, total: int) -> int | None:
    try:
        step = int(value or "")
    except ValueError:
        return None
    return step if 1 <= step <= total else None


def _section_form(definition: Definition, step: int, **kwargs: Any) -> QuestionnaireForm:
    return QuestionnaireForm(definition=definition, section=definition.sections[step - 1].key, **kwargs)


def _valid_choices(form: QuestionnaireForm) -> dict[str, str]:
    """The answers of a partly filled step that are valid on their own."""
    chosen = {}
    for name, field in form.fields.items():
        value = form.data.get(name)
        if isinstance(field, ChoiceField) and value and field.valid_value(value):
            chosen[name] = str(value)
    return chosen


def _first_incomplete_step(definition: Definition, answers: Mapping[str, str]) -> int | None:
    """The first step whose questions are not all validly answered (a stale draft fails here too)."""
    for number in range(1, len(definition.sections) + 1):
        if not _section_form(definition, number, data=answers).is_valid():
            return number
    return None


def _step_url(step: int) -> str:
    return f"{reverse('questionnaire')}?step={step}"


def _render_step(
    request: HttpRequest,
    definition: Definition,
    step: int,
    form: QuestionnaireForm,
    *,
    status: int = 200,
    notice: str = "",
) -> HttpResponse:
    total = len(definition.sections)
    context = {
        "definition": definition,
        "form": form,
        "step": step,
        "total": total,
        "section": definition.sections[step - 1],
        "steps": [{"number": n, "title": s.title} for n, s in enumerate(definition.sections, start=1)],
        "is_last": step == total,
        "notice": notice,
    }
    template = STEP_TEMPLATE if _is_htmx(request) else PAGE_TEMPLATE
    return render(request, template, context, status=status)


def _go_to_step(
    request: HttpRequest, definition: Definition, step: int, answers: Mapping[str, str], *, notice: str = ""
) -> HttpResponse:
    if not _is_htmx(request):
        if notice:
            messages.warning(request, notice)
        return redirect(_step_url(step))
    form = _section_form(definition, step, initial=dict(answers))
    response = _render_step(request, definition, step, form, notice=notice)
    response["HX-Push-Url"] = _step_url(step)  # the address bar, reload and history follow the step
    return response


def _submit(request: HttpRequest, definition: Definition, answers: Mapping[str, str]) -> HttpResponse:
    complete = {q.key: answers[q.key] for q in definition.questions}
    profile = profile_submit(investor=_user(request), answers=complete, version=definition.version)
    _draft_clear(request, definition.version)
    if profile.flags:
        messages.warning(request, "Some of your answers contradict each other: please confirm them below.")
    else:
        messages.success(request, "Your risk profile is scored.")
    if _is_htmx(request):
        response = HttpResponse()
        response["HX-Redirect"] = reverse("profile-result")
        return response
    return redirect("profile-result")


@role_required(Role.INVESTOR)
@require_http_methods(["GET", "POST"])
def questionnaire(request: HttpRequest) -> HttpResponse:
    definition = questionnaire_definition(questionnaire_get())
    total = len(definition.sections)
    answers = _answers_so_far(request, definition)

    if request.method == "GET":
        shown = _step_number(request.GET.get("step"), total) or 1
        return _render_step(request, definition, shown, _section_form(definition, shown, initial=answers))

    if "step" in request.POST:
        named = _step_number(request.POST["step"], total)
        if named is None:
            return HttpResponseBadRequest("Unknown questionnaire step.")
        step, posted = named, [named]
    else:
        step, posted = total, list(range(1, total + 1))

    if request.POST.get("action") == "back":
        # Keep what is validly answered on this step without asking for the rest.
        answers.update(_valid_choices(_section_form(definition, step, data=request.POST)))
        _draft_save(request, definition.version, answers)
        return _go_to_step(request, definition, max(step - 1, 1), answers)

    invalid: tuple[int, QuestionnaireForm] | None = None
    for number in posted:
        form = _section_form(definition, number, data=request.POST)
        if form.is_valid():
            answers.update(form.cleaned_data)
        elif invalid is None:
            invalid = (number, form)
    _draft_save(request, definition.version, answers)
    if invalid is not None:
        return _render_step(request, definition, *invalid, status=400)
    if step < total:
        return _go_to_step(request, definition, step + 1, answers)

    missing = _first_incomplete_step(definition, answers)
    if missing is not None:
        return _go_to_step(
            request,
            definition,
            missing,
            answers,
            notice="Some earlier answers are missing (your session may have expired): please answer this step again.",
        )
    return _submit(request, definition, answers)

"""The multi-step questionnaire: plain POST + redirect without JavaScript, fragments for htmx.

Answers live in a session draft until the last step; nothing reaches the database
before a complete, valid response is submitted.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from compliance.models import AuditEvent
from profiling.models import RiskProfile
from profiling.scoring import load_definition
from profiling.services import profile_submit
from profiling.views_questionnaire import DRAFTS_KEY
from tests.factories import BALANCED_ANSWERS

pytestmark = pytest.mark.django_db

URL = reverse("questionnaire")
RESULT_URL = reverse("profile-result")
VERSION = "2026.2"
HTMX = {"HX-Request": "true"}
DEFINITION = load_definition(VERSION)
SECTIONS = [[q.key for q in s.questions] for s in DEFINITION.sections]  # about, finances, experience, reactions
# Contradictory on purpose: sells everything after a fall (10%, and so also 20% and 35%), yet seeks maximum growth.
INCONSISTENT_ANSWERS = {
    **BALANCED_ANSWERS,
    "objective": "max_growth",
    "fall_10": "sell_all",
    "fall_20": "sell_all",
    "fall_35": "sell_all",
}


def step_data(step: int, answers: dict[str, str] = BALANCED_ANSWERS, **extra: str) -> dict[str, str]:
    return {"step": str(step), "action": "next", **{k: answers[k] for k in SECTIONS[step - 1]}, **extra}


def checked(html: str, question: str) -> str | None:
    """The value of the checked radio button of a question, if any."""
    match = re.search(rf'<input type="radio" name="{question}" value="([^"]*)"[^>]*\bchecked\b', html)
    return match.group(1) if match else None


def written() -> tuple[int, int]:
    return RiskProfile.objects.count(), AuditEvent.objects.count()


def draft(client: Client) -> dict[str, str] | None:
    return client.session.get(DRAFTS_KEY, {}).get(VERSION)


def test_the_sections_are_the_four_steps() -> None:
    assert [s.title for s in DEFINITION.sections] == [
        "About you",
        "Your finances",
        "Knowledge and experience",
        "How you react to losses",
    ]
    assert [len(keys) for keys in SECTIONS] == [4, 4, 4, 5]


def test_walking_the_steps_without_javascript_scores_the_profile(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    page = client.get(URL)
    html = page.content.decode()
    assert page.status_code == 200
    assert "<strong>Step 1 of 4</strong>: About you" in html
    assert '<progress max="4" value="1"' in html and 'id="progress"' in html
    assert all(title in html for title in ("About you", "Your finances", "Knowledge and experience"))
    assert [f"q-{k}" for k in SECTIONS[0]] == re.findall(r'<fieldset id="(q-[a-z_0-9]+)"', html)
    assert 'hx-post="/profile/questionnaire/"' in html and "vendor/htmx/htmx.min.js" in html
    assert ">Back</button>" not in html and ">Next</button>" in html

    for step in (1, 2, 3):
        response = client.post(URL, step_data(step))
        assert response.status_code == 302 and response["Location"] == f"{URL}?step={step + 1}"
        html = client.get(response["Location"]).content.decode()
        assert f"<strong>Step {step + 1} of 4</strong>: {DEFINITION.sections[step].title}" in html
        assert f'<progress max="4" value="{step + 1}"' in html
        assert ">Back</button>" in html
    assert ">See my risk level</button>" in html and ">Next</button>" not in html
    assert written() == (0, 0)
    assert draft(client) == {k: BALANCED_ANSWERS[k] for keys in SECTIONS[:3] for k in keys}

    response = client.post(URL, step_data(4))

    assert response.status_code == 302 and response["Location"] == RESULT_URL
    profile = RiskProfile.objects.get(investor=alice)
    assert profile.answers == BALANCED_ANSWERS and profile.questionnaire_version == VERSION and profile.flags == []
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["profile.scored"]
    assert draft(client) is None, "the draft is cleared once the profile is scored"
    assert "Your risk profile is scored." in client.get(RESULT_URL).content.decode()


def test_going_back_shows_the_answers_and_a_changed_answer_is_kept(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    client.post(URL, step_data(1))
    client.post(URL, step_data(2))

    # Back from step 3 with one question answered: that answer is kept, the rest is not asked for.
    response = client.post(URL, {"step": "3", "action": "back", "knowledge": "basic"})
    assert response.status_code == 302 and response["Location"] == f"{URL}?step=2"
    html = client.get(response["Location"]).content.decode()
    assert {k: checked(html, k) for k in SECTIONS[1]} == {k: BALANCED_ANSWERS[k] for k in SECTIONS[1]}

    # Back again, to step 1: change the age there.
    client.post(URL, {"step": "2", "action": "back", **{k: BALANCED_ANSWERS[k] for k in SECTIONS[1]}})
    html = client.get(f"{URL}?step=1").content.decode()
    assert checked(html, "age") == BALANCED_ANSWERS["age"]
    assert client.post(URL, step_data(1, age="45to59")).status_code == 302
    html = client.get(f"{URL}?step=1").content.decode()
    assert checked(html, "age") == "45to59"
    assert checked(client.get(f"{URL}?step=3").content.decode(), "knowledge") == "basic"

    client.post(URL, step_data(2))
    client.post(URL, step_data(3))
    assert client.post(URL, step_data(4))["Location"] == RESULT_URL

    assert RiskProfile.objects.get(investor=alice).answers == {**BALANCED_ANSWERS, "age": "45to59"}


def test_an_invalid_step_is_a_400_with_the_field_messages_and_writes_nothing(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    client.post(URL, step_data(1))
    before = written()
    data = step_data(2, liquidity_3y="someday")
    del data["horizon"]

    response = client.post(URL, data)

    html = response.content.decode()
    assert response.status_code == 400
    assert "<strong>Step 2 of 4</strong>: Your finances" in html
    assert "Please answer every question on this step." in html
    horizon = re.search(r'<fieldset id="q-horizon">.*?</fieldset>', html, re.S)
    assert horizon and "Please answer this question." in horizon.group(0)
    liquidity = re.search(r'<fieldset id="q-liquidity_3y">.*?</fieldset>', html, re.S)
    assert liquidity and "Select a valid choice. someday is not one of the available choices." in liquidity.group(0)
    assert checked(html, "emergency_savings") == BALANCED_ANSWERS["emergency_savings"], "what was posted is shown"
    assert written() == before == (0, 0)
    assert draft(client) == {k: BALANCED_ANSWERS[k] for k in SECTIONS[0]}, "the other answers are kept"
    assert checked(client.get(f"{URL}?step=1").content.decode(), "age") == BALANCED_ANSWERS["age"]


def test_an_invalid_last_step_is_a_400_and_writes_nothing(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    for step in (1, 2, 3):
        client.post(URL, step_data(step))
    data = step_data(4)
    del data["trade_off"]

    response = client.post(URL, data)

    assert response.status_code == 400 and "Please answer this question." in response.content.decode()
    assert written() == (0, 0)


def test_a_malformed_step_is_a_400(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    for step in ("0", "5", "two", ""):
        response = client.post(URL, {"step": step, "action": "next"})
        assert response.status_code == 400, step
    assert written() == (0, 0) and draft(client) is None


def test_an_unknown_step_in_the_address_shows_step_1(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    for step in ("0", "9", "x"):
        assert "<strong>Step 1 of 4</strong>" in client.get(f"{URL}?step={step}").content.decode()


def test_htmx_requests_get_fragments_and_the_last_step_an_hx_redirect(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    first = client.get(URL, headers=HTMX)
    html = first.content.decode()
    assert first.status_code == 200
    assert "<html" not in html and "<h1>" not in html and 'id="questionnaire-step"' not in html
    assert 'id="progress"' in html and "<strong>Step 1 of 4</strong>" in html

    for step in (1, 2, 3):
        response = client.post(URL, step_data(step), headers=HTMX)
        html = response.content.decode()
        assert response.status_code == 200 and "<html" not in html
        assert f"<strong>Step {step + 1} of 4</strong>" in html
        assert response["HX-Push-Url"] == f"{URL}?step={step + 1}"

    back = client.post(URL, {"step": "4", "action": "back", "fall_10": "sell_all"}, headers=HTMX)
    assert back.status_code == 200 and "<strong>Step 3 of 4</strong>" in back.content.decode()
    assert checked(back.content.decode(), "objective") == BALANCED_ANSWERS["objective"]
    client.post(URL, step_data(3, INCONSISTENT_ANSWERS), headers=HTMX)

    invalid = client.post(URL, {"step": "4", "action": "next"}, headers=HTMX)
    html = invalid.content.decode()
    assert invalid.status_code == 400 and "<html" not in html
    assert html.count("Please answer this question.") == len(SECTIONS[3])
    assert checked(html, "fall_10") is None, "a bound form shows what was posted"
    assert written() == (0, 0)

    final = client.post(URL, step_data(4, INCONSISTENT_ANSWERS), headers=HTMX)

    assert final.status_code == 200 and final["HX-Redirect"] == RESULT_URL and final.content == b""
    profile = RiskProfile.objects.get(investor=alice)
    assert profile.answers == INCONSISTENT_ANSWERS
    assert [f["code"] for f in profile.flags] == ["panic_seller_seeks_max_growth"]
    result = client.get(RESULT_URL).content.decode()
    assert "Some of your answers contradict each other: please confirm them below." in result
    assert "Yes, these answers are right" in result


def test_a_history_restore_gets_the_whole_page(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    response = client.get(f"{URL}?step=2", headers={**HTMX, "HX-History-Restore-Request": "true"})
    html = response.content.decode()
    assert "<html" in html and 'id="questionnaire-step"' in html and "<strong>Step 2 of 4</strong>" in html


@pytest.mark.parametrize("htmx", [False, True])
def test_the_last_step_with_a_missing_draft_goes_back_to_step_1(client, alice, htmx: bool) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)

    response = client.post(URL, step_data(4), headers=HTMX if htmx else {})

    notice = "Some earlier answers are missing"
    if htmx:
        html = response.content.decode()
        assert response.status_code == 200 and response["HX-Push-Url"] == f"{URL}?step=1"
        assert "<strong>Step 1 of 4</strong>" in html and notice in html
    else:
        assert response.status_code == 302 and response["Location"] == f"{URL}?step=1"
        assert notice in client.get(response["Location"]).content.decode()
    assert written() == (0, 0)
    assert draft(client) == {k: BALANCED_ANSWERS[k] for k in SECTIONS[3]}, "the last step's answers are kept"


def test_the_last_step_with_a_stale_draft_goes_back_to_the_first_bad_step(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    session = client.session
    stale = {k: BALANCED_ANSWERS[k] for keys in SECTIONS[:3] for k in keys}
    stale["horizon"] = "retired-choice"  # a choice the questionnaire no longer offers
    session[DRAFTS_KEY] = {VERSION: stale}
    session.save()

    response = client.post(URL, step_data(4))

    assert response.status_code == 302 and response["Location"] == f"{URL}?step=2"
    assert written() == (0, 0)


def test_a_draft_of_another_version_is_ignored(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    session = client.session
    session[DRAFTS_KEY] = {"2026.1": dict(BALANCED_ANSWERS)}
    session.save()

    assert checked(client.get(URL).content.decode(), "age") is None
    assert client.post(URL, step_data(4))["Location"] == f"{URL}?step=1"
    assert written() == (0, 0)


def test_without_a_draft_the_current_profile_of_the_same_version_prefills(client, alice) -> None:  # type: ignore[no-untyped-def]
    profile_submit(investor=alice, answers={**BALANCED_ANSWERS, "age": "lt30"}, version=VERSION)
    client.force_login(alice)

    assert checked(client.get(URL).content.decode(), "age") == "lt30"
    assert checked(client.get(f"{URL}?step=4").content.decode(), "fall_35") == BALANCED_ANSWERS["fall_35"]


def test_a_profile_of_another_version_does_not_prefill(client, alice) -> None:  # type: ignore[no-untyped-def]
    old = load_definition("2026.1")
    profile_submit(investor=alice, answers={q.key: q.choices[0].key for q in old.questions}, version="2026.1")
    client.force_login(alice)

    html = client.get(URL).content.decode()

    assert all(checked(html, k) is None for k in SECTIONS[0])


def test_one_post_with_every_answer_still_scores(client, alice) -> None:  # type: ignore[no-untyped-def]
    """The one-page form this flow replaced: a POST without a step answers every section."""
    client.force_login(alice)
    response = client.post(URL, BALANCED_ANSWERS)
    assert response.status_code == 302 and response["Location"] == RESULT_URL
    assert RiskProfile.objects.get(investor=alice).answers == BALANCED_ANSWERS


def test_one_post_with_a_missing_answer_shows_its_step(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.force_login(alice)
    data = {k: v for k, v in BALANCED_ANSWERS.items() if k != "objective"}
    response = client.post(URL, data)
    assert response.status_code == 400 and "<strong>Step 3 of 4</strong>" in response.content.decode()
    assert written() == (0, 0)


@pytest.mark.parametrize("who", ["carol", "erin"])
def test_advisors_and_admins_are_refused(client, who: str, request: pytest.FixtureRequest) -> None:
    client.force_login(request.getfixturevalue(who))
    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HTMX).status_code == 403
    assert client.post(URL, step_data(1)).status_code == 403
    assert client.post(URL, BALANCED_ANSWERS).status_code == 403
    assert written() == (0, 0) and draft(client) is None


def test_anonymous_users_are_sent_to_log_in(client, db) -> None:  # type: ignore[no-untyped-def]
    for response in (client.get(URL), client.post(URL, step_data(1)), client.post(URL, BALANCED_ANSWERS)):
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert written() == (0, 0) and draft(client) is None

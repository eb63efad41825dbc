"""The multi-step risk questionnaire in a real browser, as a new investor.

With htmx: one section per step swapped in place, a validation error shown on its
step, going back with the answers kept, an inconsistent answer set flagged and
confirmed on the result page, and the explanation of the level. Without
JavaScript: the same questionnaire as plain forms (POST, then redirect).

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's sync API
against pytest-django's ``live_server``. Screenshots go to ``test-artifacts/browser/``
(``q-*.png``) at the repository root.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from profiling.scoring import Question, load_definition, score_answers
from tests.browser.support import ARTIFACTS, expect, shot, submit
from tests.factories import BALANCED_ANSWERS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Response

pytestmark = pytest.mark.browser

PASSWORD = "Amber-Quarry-Violin-2047"

DEFINITION = load_definition()
STEPS = len(DEFINITION.sections)
# Sells everything after a 10% fall (and so after 20% and 35%), yet seeks maximum growth: flagged.
INCONSISTENT_ANSWERS = {
    **BALANCED_ANSWERS,
    "objective": "max_growth",
    "fall_10": "sell_all",
    "fall_20": "sell_all",
    "fall_35": "sell_all",
}
PANIC_SELLER_FLAG = (
    "You would sell everything after a 10% fall, yet you seek maximum growth, which means falls of 30% or more."
)


@pytest.fixture
def model_portfolios(market_data: None) -> None:
    """The result page explains the level with its model portfolio: build them from the loaded prices."""
    from portfolios.selectors import market_date_latest
    from portfolios.services.optimization import model_portfolios_build

    market_date = market_date_latest()
    assert market_date is not None, "market_data fixture loaded no prices"
    model_portfolios_build(as_of=market_date)


def _fieldset(page: Page, question: Question) -> Locator:
    return page.locator(f"fieldset#q-{question.key}")


def _answer(page: Page, question: Question, choice: str) -> None:
    """Click the label of a choice, as a person would, and check its radio button is now selected."""
    label = question.choice(choice).label
    fieldset = _fieldset(page, question)
    fieldset.locator("label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).click()
    expect(fieldset.get_by_label(label, exact=True)).to_be_checked()


def _answer_step(page: Page, number: int, answers: Mapping[str, str]) -> None:
    for question in DEFINITION.sections[number - 1].questions:
        _answer(page, question, answers[question.key])


def _expect_step(page: Page, number: int) -> None:
    progress = page.locator("#progress")
    expect(progress).to_contain_text(f"Step {number} of {STEPS}")
    expect(progress.locator("progress")).to_have_attribute("value", str(number))
    expect(progress.locator("li[aria-current=step]")).to_have_text(DEFINITION.sections[number - 1].title)
    expect(page.get_by_role("heading", level=2, name=DEFINITION.sections[number - 1].title)).to_be_visible()


def _expect_selected(page: Page, question: Question, choice: str) -> None:
    expect(_fieldset(page, question).get_by_label(question.choice(choice).label, exact=True)).to_be_checked()


def _sign_up(page: Page, base: str, name: str, email: str) -> None:
    page.goto(f"{base}/signup/")
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    submit(page, page.get_by_role("button", name="Sign up"))
    expect(page).to_have_url(re.compile(r"/profile/questionnaire/$"))
    expect(page.locator(".messages")).to_contain_text("Welcome to Advisor")


def test_new_investor_walks_the_steps_goes_back_and_confirms_inconsistent_answers(
    chromium: Path, live_server: object, model_portfolios: None, browser: Browser
) -> None:
    from compliance.models import AuditEvent
    from profiling.models import RiskProfile

    objective = DEFINITION.question("objective")
    fall_10 = DEFINITION.question("fall_10")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url  # type: ignore[attr-defined]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page_errors: list[str] = []
    bad_responses: list[str] = []
    htmx_posts: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            bad_responses.append(f"{response.status} {response.request.method} {response.url}")
        if response.request.method == "POST" and response.request.headers.get("hx-request") == "true":
            htmx_posts.append(response.url)

    page.on("response", on_response)

    try:
        # 1. A new investor signs up and lands on step 1; htmx is active.
        _sign_up(page, base, "Quinn Quiz", "quinn@example.com")
        assert page.evaluate("typeof window.htmx") == "object", "htmx did not load"
        page.evaluate("window.stillTheSamePage = true")  # a full page load would drop this
        _expect_step(page, 1)
        expect(page.get_by_role("button", name="Back")).to_have_count(0)
        _answer_step(page, 1, INCONSISTENT_ANSWERS)
        shot(page, "q-01-step1.png")
        page.get_by_role("button", name="Next").click()

        # 2. Step 2: Next without answering shows the field messages on the step (a 400 fragment).
        _expect_step(page, 2)
        expect(page).to_have_url(re.compile(r"/profile/questionnaire/\?step=2$"))
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#questionnaire .messages")).to_contain_text("Please answer every question on this step.")
        for question in DEFINITION.sections[1].questions:
            expect(_fieldset(page, question).locator(".errorlist")).to_have_text("Please answer this question.")
        _expect_step(page, 2)
        shot(page, "q-02-step2-errors.png")
        _answer_step(page, 2, INCONSISTENT_ANSWERS)
        page.get_by_role("button", name="Next").click()

        # 3. Step 3: a cautious-enough objective for now.
        _expect_step(page, 3)
        _answer_step(page, 3, {**INCONSISTENT_ANSWERS, "objective": "growth"})
        shot(page, "q-03-step3.png")
        page.get_by_role("button", name="Next").click()

        # 4. Step 4: sell everything after a 10% fall; then back to step 3.
        _expect_step(page, 4)
        expect(page.get_by_role("button", name="See my risk level")).to_be_visible()
        _answer(page, fall_10, "sell_all")
        page.get_by_role("button", name="Back").click()

        # 5. Back on step 3 the answer is still selected; change it to maximum growth.
        _expect_step(page, 3)
        expect(page).to_have_url(re.compile(r"/profile/questionnaire/\?step=3$"))
        _expect_selected(page, objective, "growth")
        _answer(page, objective, "max_growth")
        shot(page, "q-04-back-changed.png")
        page.get_by_role("button", name="Next").click()

        # 6. Step 4 kept the answer given before going back; finish with a contradictory set.
        _expect_step(page, 4)
        _expect_selected(page, fall_10, "sell_all")
        _answer_step(page, 4, INCONSISTENT_ANSWERS)
        shot(page, "q-05-step4.png")
        assert page.evaluate("window.stillTheSamePage === true"), "a step reloaded the whole page"
        submit(page, page.get_by_role("button", name="See my risk level"))

        # 7. The result page asks to confirm the contradictory answers.
        expect(page).to_have_url(re.compile(r"/profile/result/$"))
        expect(page.locator(".messages")).to_contain_text(
            "Some of your answers contradict each other: please confirm them below."
        )
        flags = page.locator("#flags")
        expect(flags.get_by_role("heading", name="Some answers contradict each other")).to_be_visible()
        expect(flags.locator("li")).to_have_text([PANIC_SELLER_FLAG])
        shot(page, "q-06-result-flags.png")
        submit(page, flags.get_by_role("button", name="Yes, these answers are right"))

        # 8. Confirmed: the message, the confirmed state, no button any more.
        expect(page.locator(".messages")).to_contain_text(
            "Thank you: your answers are confirmed. Your advisor will review them with you."
        )
        expect(flags).to_contain_text("You confirmed these answers on")
        expect(flags).to_contain_text("Your advisor will review them with you before any change to your money")
        expect(flags.get_by_role("button", name="Yes, these answers are right")).to_have_count(0)
        shot(page, "q-07-confirmed.png")

        # 9. The explanation of the level, with the bad-year loss.
        explanation = page.locator("#explanation")
        expect(explanation.get_by_role("heading", name="What your level means")).to_be_visible()
        expect(explanation.locator("#bad-year")).to_have_text(re.compile(r"^-?\d+\.\d%$"))
        # The wording depends on the sign of the 5th percentile (a calm, rising window can keep it positive).
        expect(explanation).to_contain_text(
            re.compile(r"bad year \(one in twenty\) (could bring a loss of|is expected to end around)")
        )
        expect(explanation.locator("#drivers tbody tr")).to_have_count(len(DEFINITION.questions))
        explanation.scroll_into_view_if_needed()
        explanation.screenshot(path=str(ARTIFACTS / "q-08-explanation.png"))
    except Exception:
        with contextlib.suppress(Exception):
            shot(page, "q-99-failure.png")
        raise
    finally:
        context.close()

    assert not page_errors, f"JavaScript errors: {page_errors}"
    assert bad_responses == [f"400 POST {base}/profile/questionnaire/"], "only the deliberate invalid step fails"
    assert len(htmx_posts) == 7, htmx_posts  # Next x3, the invalid Next, Back, Next, the final submit

    # The database agrees with what the pages showed.
    profile = RiskProfile.objects.get(investor__email="quinn@example.com")
    assert profile.answers == INCONSISTENT_ANSWERS
    assert [f["code"] for f in profile.flags] == ["panic_seller_seeks_max_growth"]
    assert profile.confirmed_at is not None
    actions = AuditEvent.objects.filter(subject=profile.investor).order_by("id").values_list("action", flat=True)
    assert list(actions)[-2:] == ["profile.scored", "profile.confirmed"]


def test_the_questionnaire_works_without_javascript(
    chromium: Path, live_server: object, model_portfolios: None, browser: Browser
) -> None:
    from profiling.models import RiskProfile

    expected_level = score_answers(DEFINITION, BALANCED_ANSWERS).risk_level
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url  # type: ignore[attr-defined]
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    htmx_requests: list[str] = []
    page.on("request", lambda r: htmx_requests.append(r.url) if r.headers.get("hx-request") else None)

    try:
        _sign_up(page, base, "Nico NoScript", "nico@example.com")
        for number in range(1, STEPS + 1):
            _expect_step(page, number)
            _answer_step(page, number, BALANCED_ANSWERS)
            if number == 1:
                shot(page, "q-nojs-01-step1.png")
            if number == 3:
                # Back is a plain POST too: step 2 comes back with its answers.
                submit(page, page.get_by_role("button", name="Back"))
                expect(page).to_have_url(re.compile(r"/profile/questionnaire/\?step=2$"))
                _expect_step(page, 2)
                for question in DEFINITION.sections[1].questions:
                    _expect_selected(page, question, BALANCED_ANSWERS[question.key])
                submit(page, page.get_by_role("button", name="Next"))
                _expect_step(page, 3)
                for question in DEFINITION.sections[2].questions:
                    _expect_selected(page, question, BALANCED_ANSWERS[question.key])
            if number < STEPS:
                submit(page, page.get_by_role("button", name="Next"))
                expect(page).to_have_url(re.compile(rf"/profile/questionnaire/\?step={number + 1}$"))
        shot(page, "q-nojs-02-step4.png")
        submit(page, page.get_by_role("button", name="See my risk level"))

        expect(page).to_have_url(re.compile(r"/profile/result/$"))
        expect(page.locator(".messages")).to_contain_text("Your risk profile is scored.")
        expect(page.locator("#risk-level")).to_have_text(str(expected_level))
        expect(page.locator("#flags")).to_have_count(0)
        expect(page.get_by_role("heading", name="What your level means")).to_be_visible()
        shot(page, "q-nojs-03-result.png")
    except Exception:
        with contextlib.suppress(Exception):
            shot(page, "q-nojs-99-failure.png")
        raise
    finally:
        context.close()

    assert htmx_requests == [], "no htmx request can be made without JavaScript"
    assert RiskProfile.objects.get(investor__email="nico@example.com").answers == BALANCED_ANSWERS

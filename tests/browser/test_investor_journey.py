"""End to end in a real browser: sign-up, profiling, deposit, pipeline, advisor approval, execution.

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's sync API
against pytest-django's ``live_server``. Screenshots of each step go to
``test-artifacts/browser/`` at the repository root.
"""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from profiling.scoring import load_definition, score_answers
from tests.browser.support import ARTIFACTS, expect, shot, submit
from tests.factories import BALANCED_ANSWERS, PASSWORD, AdminFactory, AdvisorFactory

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


INVESTOR_EMAIL = "newbie@example.com"
INVESTOR_PASSWORD = "Violet-Harbor-Lantern-2046"
ADVISOR_EMAIL = "advisor@example.com"
ADMIN_EMAIL = "admin@example.com"
DEPOSIT = "25000"


def _login(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    submit(page, page.get_by_role("button", name="Log in"))
    expect(page.locator("header.site")).to_contain_text(email)


def _logout(page: Page) -> None:
    submit(page, page.locator("header.site").get_by_role("button", name="Log out"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_investor_journey(
    chromium: Path,
    live_server: object,
    market_data: None,
    browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from advisor.celery import app

    # Approval dispatches the execution task on commit: run it inline, inside the request.
    # setitem, not setattr: Celery's Settings is a mapping (attributes are its keys), and
    # pytest >= 9 restores a setattr from the instance __dict__, where the key is absent,
    # so its undo would delattr() and fail at teardown.
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    from compliance.audit import audit_verify
    from portfolios.models import Account, Fill, Order, OrderStatus, Recommendation, RecommendationStatus, RunStatus
    from portfolios.selectors import cash_balances, market_date_latest
    from portfolios.services.optimization import model_portfolios_build
    from portfolios.services.pipeline import pipeline_run

    AdvisorFactory(email=ADVISOR_EMAIL, full_name="Avery Advisor")
    AdminFactory(email=ADMIN_EMAIL, full_name="Ada Admin")
    market_date = market_date_latest()
    assert market_date is not None, "market_data fixture loaded no prices"
    model_portfolios_build(as_of=market_date)  # the result page shows the target portfolio

    definition = load_definition()
    assert set(BALANCED_ANSWERS) == {q.key for q in definition.questions}, "answers must cover every question"
    expected_level = score_answers(definition, BALANCED_ANSWERS).risk_level

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url  # type: ignore[attr-defined]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page_errors: list[str] = []
    bad_responses: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            bad_responses.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )

    try:
        # 1. Sign up a new investor.
        page.goto(f"{base}/signup/")
        expect(page.get_by_role("heading", name="Open an investor account")).to_be_visible()
        page.get_by_label("Full name").fill("Nora Newbie")
        page.get_by_label("Email").fill(INVESTOR_EMAIL)
        page.get_by_label("Password", exact=True).fill(INVESTOR_PASSWORD)
        page.get_by_label("Password again").fill(INVESTOR_PASSWORD)
        shot(page, "01-signup.png")
        submit(page, page.get_by_role("button", name="Sign up"))

        # 2. The questionnaire, one section per step: click the label of the chosen answer to every question.
        expect(page).to_have_url(re.compile(r"/profile/questionnaire/$"))
        expect(page.locator(".messages")).to_contain_text("Welcome to Advisor")
        for number, section in enumerate(definition.sections, start=1):
            expect(page.locator("#progress")).to_contain_text(f"Step {number} of {len(definition.sections)}")
            for question in section.questions:
                label = question.choice(BALANCED_ANSWERS[question.key]).label
                fieldset = page.locator(f"fieldset#q-{question.key}")
                fieldset.locator("label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).click()
                expect(fieldset.get_by_label(label, exact=True)).to_be_checked()
            if number < len(definition.sections):
                page.get_by_role("button", name="Next").click()  # htmx swaps in the next step
        shot(page, "02-questionnaire.png")
        submit(page, page.get_by_role("button", name="See my risk level"))

        # 3. The result: risk level and the target portfolio with its weights.
        expect(page).to_have_url(re.compile(r"/profile/result/$"))
        expect(page.locator("#risk-level")).to_have_text(str(expected_level))
        target = page.locator("#target-portfolio")
        expect(target.get_by_role("heading", name="Your target portfolio")).to_be_visible()
        fund_rows = target.locator("#target-funds tbody tr")  # the classes table above sums to 100% too
        expect(fund_rows.first).to_be_visible()
        weights = [Decimal(w.rstrip("%")) for w in fund_rows.locator("td.num").all_inner_texts()]
        assert weights and all(w > 0 for w in weights), weights
        total = sum(weights, Decimal(0))
        assert abs(total - 100) <= Decimal("0.5") * len(weights), f"weights sum to {total}%"
        shot(page, "03-result.png")

        # 4. Fund the account from the dashboard.
        page.get_by_role("link", name="Go to my dashboard").click()
        expect(page.get_by_role("heading", name="Your dashboard")).to_be_visible()
        page.get_by_label("Amount").fill(DEPOSIT)
        submit(page, page.get_by_role("button", name="Deposit"))
        expect(page.locator(".messages")).to_contain_text("Deposited $25,000.00.")
        expect(page.get_by_test_id("cash")).to_have_text("$25,000.00")
        expect(page.get_by_test_id("total-value")).to_have_text("$25,000.00")
        shot(page, "04-dashboard-funded.png")
        _logout(page)

        # 5. The nightly pipeline proposes how to invest the cash.
        run = pipeline_run()
        assert run.status == RunStatus.SUCCEEDED, run.error
        account = Account.objects.get(owner__email=INVESTOR_EMAIL)
        rec = Recommendation.objects.get(account=account, pipeline_run=run)
        assert rec.status == RecommendationStatus.PENDING, rec.status

        # 6. The admin assigns the advisor.
        _login(page, base, ADMIN_EMAIL, PASSWORD)
        page.goto(f"{base}/staff/investors/")
        select = page.get_by_label(f"Advisor for {INVESTOR_EMAIL}")
        select.select_option(label=ADVISOR_EMAIL)
        row = page.locator("#investors tbody tr").filter(has=select)
        submit(page, row.get_by_role("button", name="Assign"))
        expect(page.locator(".messages")).to_contain_text(f"Advisor for {INVESTOR_EMAIL} updated.")
        expect(page.get_by_label(f"Advisor for {INVESTOR_EMAIL}").locator("option:checked")).to_have_text(ADVISOR_EMAIL)
        _logout(page)

        # 7. The advisor reviews and approves.
        _login(page, base, ADVISOR_EMAIL, PASSWORD)
        page.goto(f"{base}/advisor/queue/")
        queue_row = page.locator("#queue tbody tr").filter(has_text=INVESTOR_EMAIL)
        expect(queue_row).to_have_count(1)
        queue_row.get_by_role("link", name="review").click()
        expect(page).to_have_url(re.compile(rf"/recommendations/{rec.pk}/$"))
        expect(page.locator("#rec-status")).to_have_text("Awaiting advisor review")
        trade_rows = page.locator("#trades tbody tr")
        expect(trade_rows).to_have_count(rec.trades.count())
        expect(trade_rows.first).to_contain_text("Buy")
        finding_rows = page.locator("#findings tbody tr")
        expect(finding_rows.first).to_be_visible()
        expect(page.locator("#findings")).not_to_contain_text("Not checked yet.")
        page.get_by_label("Comment").fill("Invests the new deposit per the level target. Approved.")
        shot(page, "05-advisor-review.png")
        submit(page, page.locator("#decide").get_by_role("button", name="Approve"))
        expect(page.locator(".messages")).to_contain_text("Approved.")
        expect(page.locator("#rec-status")).to_have_text("Executed")
        expect(page.locator("#trades tbody tr").filter(has_text="Filled")).to_have_count(rec.trades.count())
        expect(page.locator("#decide")).to_have_count(0)
        shot(page, "06-approved.png")
        _logout(page)

        # 8. The investor sees the holdings and the executed recommendation.
        _login(page, base, INVESTOR_EMAIL, INVESTOR_PASSWORD)
        page.goto(f"{base}/dashboard/")
        holdings = page.locator(".card").filter(has=page.get_by_role("heading", name="Holdings"))
        holding_rows = holdings.locator("tbody tr")
        expect(holding_rows.first).not_to_contain_text("No holdings yet.")
        # The table also lists target funds not held (0 shares): keep the rows with shares.
        held = {}
        for cells in (row.locator("td").all_inner_texts() for row in holding_rows.all()):
            ticker, shares, value = cells[0].strip(), Decimal(cells[2].strip()), cells[4].strip()
            assert re.fullmatch(r"[A-Z]{2,6}", ticker), cells
            if shares > 0:
                assert re.fullmatch(r"\$[1-9][\d,]*\.\d\d", value), cells
                held[ticker] = shares
        filled = dict(Fill.objects.filter(order__recommendation=rec).values_list("order__asset__ticker", "quantity"))
        assert held == filled, (held, filled)
        expect(page.get_by_test_id("cash")).not_to_have_text("$25,000.00")
        rec_row = page.locator("#recommendations tbody tr").filter(has_text="Executed")
        expect(rec_row).to_have_count(1)
        expect(rec_row.locator(".badge")).to_have_text("Executed")
        shot(page, "07-dashboard-invested.png")
    except Exception:
        with contextlib.suppress(Exception):
            shot(page, "99-failure.png")
        raise
    finally:
        context.close()

    assert not page_errors, f"JavaScript errors: {page_errors}"
    assert not bad_responses, f"failed requests: {bad_responses}"

    # The database agrees with what the pages showed.
    rec.refresh_from_db()
    assert rec.status == RecommendationStatus.EXECUTED
    orders = list(Order.objects.filter(recommendation=rec))
    assert orders, "approval created no orders"
    assert all(o.status == OrderStatus.FILLED for o in orders), [(o.pk, o.status, o.note) for o in orders]
    assert Fill.objects.filter(order__in=orders).count() == len(orders), "every order has one fill"
    assert cash_balances([account.pk]).get(account.pk, Decimal(0)) >= 0
    events, chain_break = audit_verify()
    assert events > 0
    assert chain_break is None, chain_break

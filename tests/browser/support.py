"""Helpers shared by the browser tests (fixtures are in conftest.py beside this file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"


def in_ci() -> bool:
    # The same values tests/conftest.py accepts: the two must agree on what CI is.
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """In CI a missing browser is a failure; on a developer machine, a skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: browser tests must run)", pytrace=False)
    pytest.skip(reason)


def expect(target: Page | Locator) -> Any:
    """Playwright's ``expect``, imported late so a missing package skips instead of failing collection."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def submit(page: Page, button: Locator) -> None:
    """Click a submit button and wait for the page the server answers with."""
    with page.expect_navigation(wait_until="load"):
        button.click()

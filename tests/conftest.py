"""Shared fixtures: persona users, shipped market data, and the Postgres test-database allowance."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from hypothesis import settings as hypothesis_settings

from tests.factories import AdminFactory, AdvisorFactory, InvestorFactory
from tests.market import load_market_data

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# CI runs the same hypothesis examples every time, so a landing never hinges on a lucky draw; developers'
# runs stay random and find new cases (which then become @example lines).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    hypothesis_settings.load_profile("ci")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    """In CI the suite runs on Postgres and Redis or not at all: no silent fallback to SQLite."""
    if not IN_CI:
        return
    database_url = os.environ.get("DATABASE_URL", "")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    problems = []
    if not database_url.startswith(("postgres://", "postgresql://")):
        problems.append(f"DATABASE_URL must point at Postgres in CI, got {database_url!r}")
    elif not _reachable(database_url, 5432):
        problems.append(f"Postgres at {database_url} is unreachable")
    if not broker_url.startswith("redis://"):
        problems.append(f"CELERY_BROKER_URL must point at Redis in CI, got {broker_url!r}")
    elif not _reachable(broker_url, 6379):
        problems.append(f"Redis at {broker_url} is unreachable")
    if problems:
        pytest.exit("CI requires real services:\n  " + "\n  ".join(problems), returncode=3)


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def redis_available() -> bool:
    url = settings.CELERY_BROKER_URL
    return url.startswith("redis://") and _reachable(url, 6379)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        if connection.vendor == "postgresql":
            # Test runs reset tables with TRUNCATE; only the test database allows it on the audit log.
            name = connection.settings_dict["NAME"]
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER DATABASE \"{name}\" SET advisor.allow_audit_truncate = 'on'")
                cursor.execute("SET advisor.allow_audit_truncate = 'on'")
        load_market_data()


@pytest.fixture(autouse=True)
def _short_estimation_window(settings: pytest.FixtureRequest) -> None:
    """Tests load four years of prices; estimate from three."""
    settings.ADVISOR = {**settings.ADVISOR, "ESTIMATION_YEARS": 3}  # type: ignore[attr-defined]


@pytest.fixture
def market_data(django_db_blocker: pytest.FixtureRequest) -> None:
    """Prices and universe present (re-loaded after a transactional test flushed them)."""
    load_market_data()


@pytest.fixture
def alice(db: None) -> object:
    return InvestorFactory(email="alice@example.com", full_name="Alice Investor")


@pytest.fixture
def bob(db: None) -> object:
    return InvestorFactory(email="bob@example.com", full_name="Bob Investor")


@pytest.fixture
def carol(db: None) -> object:
    """Alice's advisor."""
    return AdvisorFactory(email="carol@example.com", full_name="Carol Advisor")


@pytest.fixture
def dave(db: None) -> object:
    """An advisor with no clients."""
    return AdvisorFactory(email="dave@example.com", full_name="Dave Advisor")


@pytest.fixture
def erin(db: None) -> object:
    """The admin / compliance officer."""
    return AdminFactory(email="erin@example.com", full_name="Erin Admin")


@pytest.fixture
def axes_reset() -> Iterator[None]:
    yield
    from axes.utils import reset

    reset()


@pytest.fixture
def funded_alice(alice, carol, erin, market_data):  # type: ignore[no-untyped-def]
    """Alice: balanced profile, Carol as her advisor, $100,000 deposited in a taxable account."""
    from decimal import Decimal

    from advisor.services import investor_assign_advisor
    from portfolios.services.accounts import account_deposit, account_open
    from profiling.services import profile_submit
    from tests.factories import BALANCED_ANSWERS

    investor_assign_advisor(investor=alice, advisor=carol, actor=erin)
    profile_submit(investor=alice, answers=BALANCED_ANSWERS)
    account = account_open(owner=alice)
    account_deposit(account=account, amount=Decimal("100000.00"), actor=alice)
    alice.refresh_from_db()
    return alice

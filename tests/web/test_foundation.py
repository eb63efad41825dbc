"""Settings, deployment files, health check, sign-up, log-in lockout and password reset."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core import mail
from django.urls import reverse

from advisor.models import Role, User
from compliance.models import AuditEvent
from portfolios.models import Account
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def test_production_settings_pass_the_deploy_check() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))} | {
        "DJANGO_PRODUCTION": "true",
        "DJANGO_SECRET_KEY": "x" * 24 + "a-long-random-production-secret-for-the-check",
        "DJANGO_ALLOWED_HOSTS": "advisor.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {
        "DJANGO_PRODUCTION": "true",
        "DJANGO_ALLOWED_HOSTS": "advisor.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_docker_compose_defines_every_service_with_a_healthcheck() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"], name
    assert "gunicorn" in services["web"]["command"]
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["database"]["ok"] and body["broker"]["ok"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_unreachable(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False and response.json()["database"]["ok"] is True


@pytest.mark.django_db
def test_sign_up_creates_an_investor_with_an_account_and_logs_in(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        reverse("signup"),
        {"full_name": "Nina New", "email": "Nina@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == reverse("questionnaire")
    user = User.objects.get(email="nina@example.com")
    assert user.role == Role.INVESTOR and user.password.startswith("argon2")
    assert Account.objects.filter(owner=user, account_type="taxable").count() == 1
    assert list(AuditEvent.objects.filter(subject=user).values_list("action", flat=True)) == [
        "user.signed_up",
        "account.opened",
    ]
    assert client.get(reverse("dashboard")).status_code == 200


@pytest.mark.django_db
def test_sign_up_refusals_write_nothing(client, alice) -> None:  # type: ignore[no-untyped-def]
    users, events = User.objects.count(), AuditEvent.objects.count()
    cases = [
        ({"email": "alice@example.com", "password1": PASSWORD, "password2": PASSWORD}, "already exists"),
        ({"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD + "x"}, "passwords differ"),
        ({"email": "new@example.com", "password1": "short", "password2": "short"}, "too short"),
        ({"email": "not-an-email", "password1": PASSWORD, "password2": PASSWORD}, "valid email"),
    ]
    for data, message in cases:
        response = client.post(reverse("signup"), data)
        assert response.status_code == 400 and message in response.content.decode(), message
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


@pytest.mark.django_db
def test_sign_up_cannot_choose_a_role(client) -> None:  # type: ignore[no-untyped-def]
    client.post(
        reverse("signup"),
        {"email": "sneaky@example.com", "password1": PASSWORD, "password2": PASSWORD, "role": "admin"},
    )
    assert User.objects.get(email="sneaky@example.com").role == Role.INVESTOR


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account(client, alice, axes_reset, settings) -> None:  # type: ignore[no-untyped-def]
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "alice@example.com", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_and_logout(client, alice, axes_reset) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("login"), {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(alice.pk)
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_reset_sends_a_working_link(client, alice) -> None:  # type: ignore[no-untyped-def]
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/reset/" in line)
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    new_password = "a-brand-new-passphrase-2026"
    client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    alice.refresh_from_db()
    assert alice.check_password(new_password)


@pytest.mark.django_db
def test_api_requires_authentication_and_issues_tokens(client, alice, axes_reset) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/me/").status_code == 401
    bad = client.post("/api/auth/token/", {"email": "alice@example.com", "password": "nope"})
    assert bad.status_code == 400
    token = client.post("/api/auth/token/", {"email": "alice@example.com", "password": PASSWORD}).json()["token"]
    me = client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com" and me.json()["role"] == "investor"


@pytest.mark.django_db
def test_openapi_schema_and_swagger_ui_are_served_locally(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/accounts/{id}/deposits/", "/api/recommendations/{id}/approve/", "/api/profile/"} <= set(paths)
    docs = client.get("/api/docs/").content.decode()
    # no script or style from another host ("cdn" alone also matches random letters of the page's CSRF token)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", docs), "the docs page loads something from elsewhere"

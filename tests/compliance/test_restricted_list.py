"""The compliance restricted list: services, the rule, the pipeline, the admin page and the API."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from advisor.errors import InvalidInputError, InvalidStateError, NotAllowedError
from compliance.models import AuditEvent, RestrictedAsset
from compliance.rules import BLOCK, PASS, Proposal, RestrictedList, TradeLine
from compliance.services import restricted_add, restricted_remove, restricted_tickers
from portfolios.models import PersonalTarget, Recommendation, TradeSide
from portfolios.services.pipeline import pipeline_run

PRICES = {"VTI": Decimal("100"), "AGG": Decimal("50")}


def proposal(*trades: TradeLine, restricted: frozenset[str] = frozenset({"VTI"})) -> Proposal:
    return Proposal(
        risk_level=6,
        cash_before=Decimal("1000"),
        holdings_before={"VTI": Decimal("20")},
        prices=PRICES,
        trades=list(trades),
        target_volatility=0.08,
        restricted=restricted,
    )


# The rule (pure) ----------------------------------------------------------------------------------


def test_the_rule_blocks_a_buy_of_a_restricted_fund() -> None:
    result = RestrictedList().check(
        proposal(
            TradeLine("VTI", "buy", Decimal("5"), Decimal("100"), Decimal("-500.25")),
            TradeLine("AGG", "buy", Decimal("5"), Decimal("50"), Decimal("-250.10")),
        )
    )
    assert (result.rule_code, result.severity) == ("restricted_list", BLOCK)
    assert result.message == "Buys of restricted funds: VTI."
    assert result.details == {"tickers": ["VTI"]}


def test_the_rule_allows_selling_a_restricted_fund() -> None:
    result = RestrictedList().check(proposal(TradeLine("VTI", "sell", Decimal("20"), Decimal("100"), Decimal("1999"))))
    assert result.severity == PASS


def test_the_rule_passes_when_nothing_is_restricted() -> None:
    trade = TradeLine("VTI", "buy", Decimal("5"), Decimal("100"), Decimal("-500.25"))
    assert RestrictedList().check(proposal(trade, restricted=frozenset())).severity == PASS


# Services -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_add_and_remove_keep_the_history_and_are_audited(erin) -> None:  # type: ignore[no-untyped-def]
    # when
    added = restricted_add(actor=erin, ticker="vti", reason="Under investigation")
    # then
    assert added.ticker == "VTI" and added.added_by == erin and added.removed_at is None
    assert restricted_tickers() == frozenset({"VTI"})
    event = AuditEvent.objects.get(action="restricted_list.added")
    assert (event.actor_id, event.object_type, event.object_id) == (
        erin.pk,
        "compliance.restrictedasset",
        str(added.pk),
    )
    assert event.payload == {"ticker": "VTI", "reason": "Under investigation"}
    # when
    removed = restricted_remove(actor=erin, ticker="VTI", reason="Cleared")
    # then
    assert removed.pk == added.pk and removed.removed_by == erin and removed.removed_at is not None
    assert removed.removal_reason == "Cleared"
    assert restricted_tickers() == frozenset()
    event = AuditEvent.objects.get(action="restricted_list.removed")
    assert event.payload["ticker"] == "VTI" and event.payload["reason"] == "Cleared"
    # the fund can be restricted again; both entries are kept
    restricted_add(actor=erin, ticker="VTI", reason="Again")
    assert RestrictedAsset.objects.filter(ticker="VTI").count() == 2
    assert restricted_tickers() == frozenset({"VTI"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("ticker", "reason", "error", "fields"),
    [
        ("NOPE", "Because", InvalidInputError, {"ticker"}),
        ("", "Because", InvalidInputError, {"ticker"}),
        ("AGG", "  ", InvalidInputError, {"reason"}),
        ("NOPE", "", InvalidInputError, {"ticker", "reason"}),
        ("VTI", "Twice", InvalidStateError, {"ticker"}),
    ],
)
def test_invalid_adds_are_refused_and_write_nothing(erin, ticker, reason, error, fields) -> None:  # type: ignore[no-untyped-def]
    restricted_add(actor=erin, ticker="VTI", reason="First")
    before = (RestrictedAsset.objects.count(), AuditEvent.objects.count())
    with pytest.raises(error) as excinfo:
        restricted_add(actor=erin, ticker=ticker, reason=reason)
    assert set(excinfo.value.fields) == fields
    assert (RestrictedAsset.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.django_db
def test_removing_a_fund_that_is_not_restricted_is_refused(erin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStateError) as excinfo:
        restricted_remove(actor=erin, ticker="VTI", reason="Cleared")
    assert set(excinfo.value.fields) == {"ticker"}
    with pytest.raises(InvalidInputError):
        restricted_remove(actor=erin, ticker="VTI", reason="")
    assert (RestrictedAsset.objects.count(), AuditEvent.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_only_admins_may_change_the_list(alice, carol, erin) -> None:  # type: ignore[no-untyped-def]
    for user in (alice, carol):
        with pytest.raises(NotAllowedError):
            restricted_add(actor=user, ticker="VTI", reason="Nope")
    restricted_add(actor=erin, ticker="VTI", reason="Yes")
    before = (list(RestrictedAsset.objects.values_list("pk", "removed_at")), AuditEvent.objects.count())
    with pytest.raises(NotAllowedError):
        restricted_remove(actor=carol, ticker="VTI", reason="Nope")
    assert (list(RestrictedAsset.objects.values_list("pk", "removed_at")), AuditEvent.objects.count()) == before


# Pipeline -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_restricted_fund_gets_no_target_weight_and_is_not_bought(funded_alice, erin) -> None:  # type: ignore[no-untyped-def]
    # given
    restricted_add(actor=erin, ticker="VTI", reason="Under investigation")
    # when
    pipeline_run()
    # then
    rec = Recommendation.objects.get()
    target = rec.personal_target
    assert target is not None and PersonalTarget.objects.count() == 1
    assert Decimal(target.weights.get("VTI", "0")) == 0
    assert sum(Decimal(w) for w in target.weights.values()) == Decimal(1)
    [binding] = target.binding
    assert binding["kind"] == "exclusion" and "VTI" in binding["assets"]
    assert binding["label"] == "Compliance restricted list"
    bought = {t.asset.ticker for t in rec.trades.select_related("asset") if t.side == TradeSide.BUY}
    assert bought and "VTI" not in bought
    finding = rec.findings.get(rule_code="restricted_list")
    assert finding.severity == PASS
    assert rec.findings.count() == 6


# Page and API -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_lists_adds_and_removes_for_admins(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    assert client.get(reverse("staff-restricted")).status_code == 200
    response = client.post(reverse("staff-restricted"), {"ticker": "VTI", "reason": "Under investigation"})
    assert response.status_code == 302
    assert restricted_tickers() == frozenset({"VTI"})
    page = client.get(reverse("staff-restricted"))
    assert page.status_code == 200 and "Under investigation" in page.content.decode()
    remove = reverse("staff-restricted-remove", kwargs={"ticker": "VTI"})
    assert client.post(remove, {"reason": "Cleared"}).status_code == 302
    assert restricted_tickers() == frozenset()
    assert "Cleared" in client.get(reverse("staff-restricted")).content.decode()


@pytest.mark.django_db
def test_the_page_shows_errors_with_400_and_writes_nothing(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    response = client.post(reverse("staff-restricted"), {"ticker": "NOPE", "reason": ""})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Unknown ticker" in body and "Give the reason." in body
    remove = reverse("staff-restricted-remove", kwargs={"ticker": "VTI"})
    response = client.post(remove, {"reason": "Cleared"})
    assert response.status_code == 400 and "VTI is not restricted." in response.content.decode()
    assert (RestrictedAsset.objects.count(), AuditEvent.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_the_page_is_for_admins_only(client, bob, dave) -> None:  # type: ignore[no-untyped-def]
    for user in (bob, dave):
        client.force_login(user)
        assert client.get(reverse("staff-restricted")).status_code == 403
        assert client.post(reverse("staff-restricted"), {"ticker": "VTI", "reason": "x"}).status_code == 403
        remove = reverse("staff-restricted-remove", kwargs={"ticker": "VTI"})
        assert client.post(remove, {"reason": "x"}).status_code == 403
    assert RestrictedAsset.objects.count() == 0


@pytest.mark.django_db
def test_the_api_lists_and_adds_for_admins(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    url = reverse("api-restricted-assets")
    response = client.post(url, {"ticker": "VTI", "reason": "Under investigation"}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["ticker"] == "VTI" and response.json()["added_by"] == "erin@example.com"
    listed = client.get(url)
    assert listed.status_code == 200
    assert [(e["ticker"], e["reason"], e["removed_at"]) for e in listed.json()] == [
        ("VTI", "Under investigation", None)
    ]


@pytest.mark.django_db
def test_the_api_rejects_bad_input_with_field_messages(client, erin) -> None:  # type: ignore[no-untyped-def]
    client.force_login(erin)
    url = reverse("api-restricted-assets")
    missing = client.post(url, {"ticker": "VTI"}, content_type="application/json")
    assert missing.status_code == 400 and "reason" in missing.json()
    unknown = client.post(url, {"ticker": "NOPE", "reason": "x"}, content_type="application/json")
    assert unknown.status_code == 400 and "ticker" in unknown.json()
    assert (RestrictedAsset.objects.count(), AuditEvent.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_the_api_is_for_admins_only(client, bob, dave) -> None:  # type: ignore[no-untyped-def]
    url = reverse("api-restricted-assets")
    for user in (bob, dave):
        client.force_login(user)
        assert client.get(url).status_code == 403
        response = client.post(url, {"ticker": "VTI", "reason": "x"}, content_type="application/json")
        assert response.status_code == 403
    assert RestrictedAsset.objects.count() == 0

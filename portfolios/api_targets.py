"""DRF endpoints for the asset universe, an account's personal target and the advisors' what-if.

- ``GET /api/assets/``: the universe, for anyone logged in; a fund whose prices do not cover the current
  estimation window is flagged (``history_covers_window``), not hidden.
- ``GET /api/accounts/<id>/target/``: the personal target of an account at its owner's effective risk level,
  with the constraints that bind, what each costs and a sentence each; for whoever may see the account
  (``access.accounts_for``: the owner, the assigned advisor, admins), 404 for anyone else.
- ``GET /api/model-portfolios/what-if/``: the what-if of ``services/whatif.py`` from query parameters, for
  advisors and admins; nothing is written.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from django.db.models import Max, Min
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.permissions import IsAdminRole, IsAdvisor

from .access import accounts_for
from .constrained import OBJECTIVES
from .explain import binding_sentence
from .forms import whatif_from_query
from .models import Account, AccountType, Asset, AssetClass, PersonalTarget
from .outlook import bad_year_return
from .selectors import current_risk_levels, market_date_latest, optimization_policy_current
from .services.targets import personal_target_lookup
from .universe import ESG_FLAGS

# --- the asset universe -----------------------------------------------------------------------------------


class AssetListApi(APIView):
    class UniverseAssetSerializer(serializers.Serializer):
        ticker = serializers.CharField()
        name = serializers.CharField()
        asset_class = serializers.CharField(source="asset_class.code")
        asset_class_name = serializers.CharField(source="asset_class.name")
        kind = serializers.CharField(source="asset_class.kind")
        in_model_universe = serializers.BooleanField()
        expense_ratio = serializers.DecimalField(max_digits=7, decimal_places=6)
        esg_flags = serializers.ListField(child=serializers.CharField())
        tax_treatment = serializers.CharField()
        substitute = serializers.CharField(source="substitute.ticker", allow_null=True, default=None)
        tracks_index = serializers.CharField()
        first_price_date = serializers.DateField(allow_null=True)
        last_price_date = serializers.DateField(allow_null=True)
        history_covers_window = serializers.BooleanField()

    class EstimationWindowSerializer(serializers.Serializer):
        start = serializers.DateField(allow_null=True)
        end = serializers.DateField(allow_null=True)
        years = serializers.IntegerField()

    class UniverseSerializer(serializers.Serializer):
        estimation_window = serializers.DictField()  # EstimationWindowSerializer
        count = serializers.IntegerField()
        results = serializers.ListField(child=serializers.DictField())  # UniverseAssetSerializer

    @extend_schema(
        responses=UniverseSerializer,
        summary="The asset universe, with each fund's price history against the estimation window",
    )
    def get(self, request: Request) -> Response:
        _, policy = optimization_policy_current()
        end = market_date_latest()
        # As portfolios.estimation.history_window cuts it: a fund whose first price is after the start is late.
        start: date | None = (pd.Timestamp(end) - pd.DateOffset(years=policy.estimation_years)).date() if end else None
        assets = (
            Asset.objects.select_related("asset_class", "substitute")
            .annotate(first_price_date=Min("prices__date"), last_price_date=Max("prices__date"))
            .order_by("asset_class__display_order", "ticker")
        )
        for asset in assets:
            first, last = asset.first_price_date, asset.last_price_date
            asset.history_covers_window = (  # type: ignore[attr-defined]
                start is not None and first is not None and first <= start and last == end
            )
        rows = self.UniverseAssetSerializer(assets, many=True).data
        window = self.EstimationWindowSerializer({"start": start, "end": end, "years": policy.estimation_years}).data
        return Response({"estimation_window": window, "count": len(rows), "results": rows})


# --- an account's personal target ---------------------------------------------------------------------------


class TargetFundWeightSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    name = serializers.CharField()
    asset_class = serializers.CharField()
    weight = serializers.DecimalField(max_digits=9, decimal_places=6)


class TargetClassWeightSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    weight = serializers.DecimalField(max_digits=9, decimal_places=6)


class BindingConstraintSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    assets = serializers.ListField(child=serializers.CharField())
    limit = serializers.FloatField()
    value = serializers.FloatField()
    expected_return_cost = serializers.FloatField(allow_null=True)
    volatility_cost = serializers.FloatField(allow_null=True)
    sentence = serializers.CharField()


def _constraints_description(described: dict[str, Any], level: int) -> list[str]:
    """The stored description of a target's signature (``targets.describe_constraints``) in plain words."""
    lines = []
    by_reason: dict[str, list[str]] = defaultdict(list)
    for ticker, reasons in sorted(described.get("exclusions", {}).items()):
        for reason in reasons:
            by_reason[reason].append(ticker)
    for reason, tickers in sorted(by_reason.items()):
        lines.append(f"{', '.join(tickers)} excluded: {reason}.")
    account_type = described.get("account_type", AccountType.TAXABLE)
    if account_type != AccountType.TAXABLE:
        lines.append(f"{AccountType(account_type).label}: no municipal bonds, whose tax exemption it cannot use.")
    elif described.get("municipal_rate_floor") is not None:
        floor = float(described["municipal_rate_floor"])
        lines.append(f"No municipal bonds: the owner's marginal tax rate is below {floor:.0%}.")
    minimum = described.get("bond_cash_minimum") or 0
    if minimum:
        lines.append(f"Bonds and cash at least {float(minimum):.0%}: the house floor of risk level {level}.")
    return lines


class AccountTargetApi(APIView):
    class AccountTargetSerializer(serializers.Serializer):
        class TargetRunSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            as_of = serializers.DateField()
            created_at = serializers.DateTimeField()

        account = serializers.IntegerField()
        risk_level = serializers.IntegerField()
        optimization_run = TargetRunSerializer()
        signature = serializers.CharField()
        expected_return = serializers.DecimalField(max_digits=8, decimal_places=6)
        volatility = serializers.DecimalField(max_digits=8, decimal_places=6)
        bad_year = serializers.DecimalField(max_digits=9, decimal_places=6)
        weights = TargetFundWeightSerializer(many=True)
        classes = TargetClassWeightSerializer(many=True)
        binding = BindingConstraintSerializer(many=True)
        constraints = serializers.DictField()
        constraints_description = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        responses={200: AccountTargetSerializer},
        summary="The personal target of an account at its owner's risk level, and why (binding constraints)",
    )
    def get(self, request: Request, pk: int) -> Response:
        account: Account = get_object_or_404(accounts_for(request.user), pk=pk)  # type: ignore[arg-type]
        level = current_risk_levels([account.owner_id]).get(account.owner_id)
        if level is None:
            raise Http404("The owner of this account has no risk profile yet, so it has no target.")
        target = personal_target_lookup(account=account, risk_level=level)
        if target is None:
            raise Http404(
                f"No personal target has been built yet for this account at risk level {level}: the nightly "
                "pipeline builds it after the next optimization run."
            )
        return Response(self.AccountTargetSerializer(_target_payload(account, level, target)).data)


def _target_payload(account: Account, level: int, target: PersonalTarget) -> dict[str, Any]:
    weights = {ticker: Decimal(weight) for ticker, weight in target.weights.items()}
    assets = {a.ticker: a for a in Asset.objects.select_related("asset_class").filter(ticker__in=list(weights))}
    funds = sorted(weights, key=lambda t: (-weights[t], t))
    by_class: dict[AssetClass, Decimal] = defaultdict(Decimal)
    for ticker, weight in weights.items():
        by_class[assets[ticker].asset_class] += weight
    expected_return, volatility = target.expected_return, target.volatility
    run = target.optimization_run
    return {
        "account": account.pk,
        "risk_level": level,
        "optimization_run": {"id": run.pk, "as_of": run.as_of, "created_at": run.created_at},
        "signature": target.signature,
        "expected_return": expected_return,
        "volatility": volatility,
        "bad_year": bad_year_return(expected_return, volatility),
        "weights": [
            {
                "ticker": t,
                "name": assets[t].name,
                "asset_class": assets[t].asset_class.code,
                "weight": weights[t],
            }
            for t in funds
        ],
        "classes": [
            {"code": c.code, "name": c.name, "weight": w}
            for c, w in sorted(by_class.items(), key=lambda item: (-item[1], item[0].display_order))
        ],
        "binding": [{**b, "sentence": binding_sentence(b)} for b in target.binding],
        "constraints": target.constraints,
        "constraints_description": _constraints_description(target.constraints, level),
    }


# --- the advisors' what-if -------------------------------------------------------------------------------


class WhatIfSerializer(serializers.Serializer):
    class WhatIfWeightSerializer(serializers.Serializer):
        ticker = serializers.CharField()
        name = serializers.CharField()
        asset_class = serializers.CharField()
        weight = serializers.DecimalField(max_digits=9, decimal_places=6)
        model_weight = serializers.DecimalField(max_digits=9, decimal_places=6)
        difference = serializers.DecimalField(max_digits=9, decimal_places=6)
        current_weight = serializers.DecimalField(max_digits=9, decimal_places=6, allow_null=True)
        excluded = serializers.BooleanField()

    class WhatIfModelSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        expected_return = serializers.DecimalField(max_digits=8, decimal_places=6)
        volatility = serializers.DecimalField(max_digits=8, decimal_places=6)

    optimization_run = serializers.IntegerField(source="run.pk")
    as_of = serializers.DateField(source="run.as_of")
    risk_level = serializers.IntegerField()
    objective = serializers.CharField()
    objective_label = serializers.CharField()
    expected_return = serializers.DecimalField(max_digits=8, decimal_places=6)
    volatility = serializers.DecimalField(max_digits=8, decimal_places=6)
    bad_year = serializers.DecimalField(max_digits=9, decimal_places=6)
    model = WhatIfModelSerializer(allow_null=True)
    model_bad_year = serializers.DecimalField(max_digits=9, decimal_places=6, allow_null=True)
    risk_free_rate = serializers.FloatField()
    max_weight = serializers.DecimalField(max_digits=6, decimal_places=4)
    constraints = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField())
    account = serializers.IntegerField(source="account.pk", allow_null=True, default=None)
    weights = WhatIfWeightSerializer(many=True)
    binding = BindingConstraintSerializer(many=True)
    solve_seconds = serializers.FloatField()
    seconds = serializers.FloatField()


def _parameter(name: str, kind: Any, description: str, *, many: bool = False, required: bool = False) -> Any:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, required=required, description=description, many=many)


WHATIF_PARAMETERS = [
    _parameter(
        "risk_level", OpenApiTypes.INT, "Risk level 1-10 (its risk aversion and house constraints).", required=True
    ),
    _parameter("objective", OpenApiTypes.STR, "One of: " + ", ".join(OBJECTIVES) + " (default mean_variance)."),
    _parameter("target_volatility", OpenApiTypes.NUMBER, "Yearly volatility, e.g. 0.08: target_volatility only."),
    _parameter("run", OpenApiTypes.INT, "A succeeded optimization run (default: the current one)."),
    _parameter("max_weight", OpenApiTypes.NUMBER, "Maximum weight per fund, 0.05-1 (default: the run's)."),
    _parameter("exclude", OpenApiTypes.STR, "A model fund to exclude; repeat for more.", many=True),
    _parameter(
        "esg", OpenApiTypes.STR, "An ESG screen: " + ", ".join(sorted(ESG_FLAGS)) + "; repeat for more.", many=True
    ),
    _parameter("account_type", OpenApiTypes.STR, "taxable (default), traditional_ira or roth_ira (IRAs: no munis)."),
    _parameter("marginal_tax_rate", OpenApiTypes.NUMBER, "0-0.6; below the policy's threshold: no municipal bonds."),
    _parameter("class_limits", OpenApiTypes.STR, "class:minimum:maximum (e.g. equity:0.2:0.6); repeat.", many=True),
    _parameter("bond_cash_minimum", OpenApiTypes.NUMBER, "Least bond and cash share, 0-1 (default: the level's)."),
    _parameter("restricted_list", OpenApiTypes.BOOL, "Apply the compliance restricted list."),
    _parameter("account", OpenApiTypes.INT, "An account you may see: its holdings are the current weights."),
    _parameter("transaction_cost", OpenApiTypes.NUMBER, "Cost per unit of weight traded, 0-0.05 (needs account)."),
    _parameter("turnover_limit", OpenApiTypes.NUMBER, "Most of the account sold, 0-1 (needs account)."),
]


class ModelWhatIfApi(APIView):
    permission_classes = [IsAdvisor | IsAdminRole]

    @extend_schema(
        parameters=WHATIF_PARAMETERS,
        responses={200: WhatIfSerializer},
        summary="What-if: a level of a stored run under another objective and constraints (nothing is stored)",
    )
    def get(self, request: Request) -> Response:
        outcome = whatif_from_query(request.query_params, user=request.user, bound=True)  # type: ignore[arg-type]
        if outcome.whatif is not None:
            return Response(WhatIfSerializer(outcome.whatif).data)
        if outcome.error is not None:
            body: dict[str, Any] = {"detail": outcome.error.message}
            body.update({k: v if isinstance(v, list) else [v] for k, v in outcome.error.fields.items()})
            return Response(body, status=outcome.status)
        if outcome.form.errors:
            fields = {name: [str(e) for e in errors] for name, errors in outcome.form.errors.items()}
            return Response({"detail": "Invalid what-if parameters.", **fields}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"detail": "No optimization has run yet: run the pipeline, then ask again."},
            status=status.HTTP_409_CONFLICT,
        )

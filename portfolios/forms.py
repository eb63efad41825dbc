"""Forms of the portfolios pages."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.db.models import QuerySet

from advisor.errors import DomainError
from advisor.models import User

from .constrained import OBJECTIVES
from .models import Account, AccountType, Asset, OptimizationRun, RunStatus
from .policy import CLASS_CODES, CLASS_KINDS
from .universe import ESG_FLAGS

if TYPE_CHECKING:
    from .services.whatif import WhatIf

ClassLimits = dict[str, tuple[Decimal | None, Decimal | None]]
_CLASS_LIMIT = re.compile(r"^(?P<group>[a-z_]+):(?P<low>[0-9.]*):(?P<high>[0-9.]*)$")


def parse_class_limits(text: str) -> ClassLimits:
    """``group:minimum:maximum`` items separated by commas, spaces or lines; an empty bound is no bound.

    ``equity:0.2:0.6, gold::0.05`` -> {"equity": (0.2, 0.6), "gold": (None, 0.05)}. Raises ``ValidationError``
    naming each bad item.
    """
    limits: ClassLimits = {}
    errors = []
    for item in (part for part in re.split(r"[\s,;]+", text.strip()) if part):
        match = _CLASS_LIMIT.match(item)
        if match is None:
            errors.append(f"{item!r}: write class:minimum:maximum, for example equity:0.2:0.6 or gold::0.05.")
            continue
        group = match["group"]
        if group not in CLASS_CODES and group not in CLASS_KINDS:
            errors.append(f"{group!r} is neither an asset class nor a kind ({', '.join(sorted(CLASS_KINDS))}).")
            continue
        try:
            low = Decimal(match["low"]) if match["low"] else None
            high = Decimal(match["high"]) if match["high"] else None
        except InvalidOperation:
            errors.append(f"{item!r}: the bounds must be numbers between 0 and 1.")
            continue
        if low is None and high is None:
            errors.append(f"{item!r}: give a minimum, a maximum or both.")
        elif any(b is not None and not Decimal(0) <= b <= Decimal(1) for b in (low, high)):
            errors.append(f"{item!r}: the bounds must be shares between 0 and 1.")
        elif low is not None and high is not None and low > high:
            errors.append(f"{item!r}: the minimum is above the maximum.")
        elif group in limits:
            errors.append(f"{group!r} is given twice.")
        else:
            limits[group] = (low, high)
    if errors:
        raise forms.ValidationError(errors)
    return limits


def _share(label: str, *, low: str = "0", high: str = "1", places: int = 4, **kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        min_value=Decimal(low),
        max_value=Decimal(high),
        max_digits=places + 2,
        decimal_places=places,
        widget=forms.NumberInput(attrs={"step": "any", **kwargs}),
    )


class WhatIfForm(forms.Form):
    """Query parameters of the advisors' what-if (the page's GET form and the API's query string alike)."""

    run = forms.IntegerField(label="Optimization run (empty: the current one)", required=False, min_value=1)
    risk_level = forms.IntegerField(
        label="Risk level", min_value=1, max_value=10, widget=forms.NumberInput(attrs={"step": 1})
    )
    objective = forms.ChoiceField(label="Objective", choices=list(OBJECTIVES.items()), required=False)
    target_volatility = _share(
        "Target volatility (target-volatility objective only; e.g. 0.08)",
        low="0.001",
        places=6,
        placeholder="e.g. 0.08",
    )
    max_weight = _share("Maximum weight per fund (0.05 to 1; empty: the run's)", low="0.05", placeholder="e.g. 0.25")
    exclude = forms.MultipleChoiceField(label="Exclude funds", required=False, widget=forms.CheckboxSelectMultiple)
    esg = forms.MultipleChoiceField(
        label="ESG screens",
        required=False,
        choices=sorted(ESG_FLAGS.items()),
        widget=forms.CheckboxSelectMultiple,
    )
    account_type = forms.ChoiceField(
        label="Account type", required=False, choices=[("", "Taxable (default)"), *AccountType.choices]
    )
    marginal_tax_rate = _share("Marginal tax rate (e.g. 0.24; the municipal-bond rule)", high="0.6")
    class_limits = forms.CharField(
        label="Class limits (class:minimum:maximum, e.g. equity:0.2:0.6, gold::0.05)",
        required=False,
        max_length=500,
    )
    bond_cash_minimum = _share("Bond/cash minimum (empty: the level's)")
    restricted_list = forms.BooleanField(label="Apply the compliance restricted list", required=False)
    account = forms.ModelChoiceField(
        label="Account id (its holdings are the current weights)",
        queryset=Account.objects.none(),
        required=False,
        widget=forms.NumberInput(attrs={"step": 1}),
        error_messages={"invalid_choice": "No account of yours has this id."},
    )
    transaction_cost = _share("Transaction cost per unit traded (e.g. 0.002)", high="0.05", places=6)
    turnover_limit = _share("Turnover limit: the most of the account sold (e.g. 0.1)")

    def __init__(
        self, *args: Any, universe: Sequence[Asset] = (), accounts: QuerySet[Account] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        exclude = cast(forms.MultipleChoiceField, self.fields["exclude"])
        exclude.choices = [(a.ticker, f"{a.ticker} ({a.asset_class.name})") for a in universe]
        if accounts is not None:
            cast(forms.ModelChoiceField, self.fields["account"]).queryset = accounts

    def clean_class_limits(self) -> ClassLimits:
        return parse_class_limits(self.cleaned_data.get("class_limits") or "")

    def clean_objective(self) -> str:
        return self.cleaned_data.get("objective") or "mean_variance"

    def service_arguments(self) -> dict[str, Any]:
        """The cleaned values as ``model_portfolio_whatif`` keywords (``run`` apart)."""
        data = self.cleaned_data
        return {
            "risk_level": data["risk_level"],
            "objective": data["objective"],
            "target_volatility": data["target_volatility"],
            "max_weight": data["max_weight"],
            "excluded": data["exclude"],
            "esg": data["esg"],
            "account_type": data["account_type"] or None,
            "marginal_tax_rate": data["marginal_tax_rate"],
            "class_limits": data["class_limits"],
            "bond_cash_minimum": data["bond_cash_minimum"],
            "restricted_list": data["restricted_list"],
            "account": data["account"],
            "transaction_cost": data["transaction_cost"],
            "turnover_limit": data["turnover_limit"],
        }


def whatif_query(query: Mapping[str, Any]) -> dict[str, Any] | Any:
    """A query string as form data: repeated ``class_limits`` parameters joined (the API repeats them)."""
    getlist = getattr(query, "getlist", None)
    if getlist is None or "class_limits" not in query:
        return query
    data = query.copy()  # type: ignore[attr-defined]
    data["class_limits"] = ", ".join(getlist("class_limits"))
    return data


@dataclass
class WhatIfOutcome:
    """A what-if query, validated and computed: the form (with its errors), the run, the result, the status."""

    form: WhatIfForm
    run: OptimizationRun | None
    whatif: WhatIf | None = None
    status: int = 200
    messages: list[str] = field(default_factory=list)  # errors that belong to no field, one per conflict
    error: DomainError | None = None  # the service's refusal, for the API's field messages


def whatif_from_query(query: Mapping[str, Any], *, user: User, bound: bool = False) -> WhatIfOutcome:
    """Validate ``query`` (GET parameters) and compute the what-if for ``user``; errors go to the form.

    An empty query gives the empty form (status 200) unless ``bound`` (the API: it is validated, and refused);
    no optimization run gives no result (the caller says so).
    """
    from .access import accounts_for
    from .selectors import model_universe, optimization_run_current
    from .services.whatif import WhatIfInfeasibleError, model_portfolio_whatif

    data = whatif_query(query) if query or bound else None
    run = optimization_run_current()
    run_error = None
    raw_run = (data or {}).get("run")
    if raw_run:
        chosen = None
        if str(raw_run).isdigit():
            chosen = OptimizationRun.objects.filter(pk=int(raw_run), status=RunStatus.SUCCEEDED).first()
        if chosen is None:
            run_error = f"No succeeded optimization run has the id {raw_run}."
        else:
            run = chosen
    form = WhatIfForm(data, universe=model_universe(run) if run else (), accounts=accounts_for(user))
    outcome = WhatIfOutcome(form=form, run=run)
    if not form.is_bound:
        return outcome
    valid = form.is_valid()
    if run_error is not None:
        form.add_error("run", run_error)
        valid = False
    if not valid:
        outcome.status = 400
        return outcome
    if run is None:
        return outcome
    try:
        outcome.whatif = model_portfolio_whatif(run=run, actor=user, **form.service_arguments())
    except DomainError as exc:
        outcome.status = exc.status_code
        outcome.error = exc
        if isinstance(exc, WhatIfInfeasibleError):  # a list of conflicts, no one field to blame
            outcome.messages = [f"Infeasible: {problem}." for problem in exc.problems]
            return outcome
        placed = False
        for name, message in exc.fields.items():
            if name in form.fields:
                placed = True
                for line in message if isinstance(message, list) else [message]:
                    form.add_error(name, line)
        if not placed:
            outcome.messages = [exc.message]
    return outcome


class AccountOpenForm(forms.Form):
    """The investor's "open another account" page; the service checks the rules again."""

    account_type = forms.ChoiceField(label="Account type", choices=AccountType.choices, initial=AccountType.TAXABLE)
    name = forms.CharField(
        label="Name (optional: the type's name by default)",
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Retirement"}),
    )

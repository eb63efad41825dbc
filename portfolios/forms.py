"""Forms of the portfolios pages."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from django import forms

from .models import AccountType, Asset


class WhatIfForm(forms.Form):
    """GET parameters of the advisors' what-if: a level and, optionally, other constraints."""

    risk_level = forms.IntegerField(
        label="Risk level", min_value=1, max_value=10, widget=forms.NumberInput(attrs={"step": 1})
    )
    max_weight = forms.DecimalField(
        label="Maximum weight per fund (0.05 to 1; empty: the run's)",
        required=False,
        min_value=Decimal("0.05"),
        max_value=Decimal("1"),
        max_digits=5,
        decimal_places=4,
        widget=forms.NumberInput(attrs={"step": "0.01", "placeholder": "e.g. 0.25"}),
    )
    exclude = forms.MultipleChoiceField(label="Exclude funds", required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, universe: Sequence[Asset] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.MultipleChoiceField, self.fields["exclude"])
        field.choices = [(a.ticker, f"{a.ticker} ({a.asset_class.name})") for a in universe]


class AccountOpenForm(forms.Form):
    """The investor's "open another account" page; the service checks the rules again."""

    account_type = forms.ChoiceField(label="Account type", choices=AccountType.choices, initial=AccountType.TAXABLE)
    name = forms.CharField(
        label="Name (optional: the type's name by default)",
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Retirement"}),
    )

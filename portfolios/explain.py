"""Plain words for the constraints that shape a personal target (pure: no Django).

Shared by the pipeline's recommendation explanations, the investor's dashboard ("Why this target") and the
account-target API, so an investor reads the same sentence everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def binding_sentence(binding: Mapping[str, Any]) -> str:
    """One constraint of the investor that shapes the target, and what it costs, in plain words.

    ``binding`` is a stored row of ``PersonalTarget.binding`` (``services.targets.binding_rows``): its label,
    assets, and the expected return given up and volatility added (fractions, None when not explained).
    """
    assets = list(binding["assets"])
    listed = assets[0] if len(assets) == 1 else ", ".join(assets[:-1]) + " and " + assets[-1] if assets else ""
    if binding["kind"] == "exclusion":
        sentence = f"{binding['label']} removes {listed}"
    else:
        sentence = f"{binding['label']} holds {listed} at its limit" if assets else f"{binding['label']} binds"
    return_cost, volatility_cost = binding["expected_return_cost"], binding["volatility_cost"]
    if return_cost is None:
        return sentence + "."
    sentence += f", costing about {max(return_cost, 0) * 100:.1f} percentage points of expected return a year"
    if volatility_cost is not None and abs(volatility_cost) >= 0.0005:
        change = "adding" if volatility_cost > 0 else "taking away"
        sentence += f" and {change} about {abs(volatility_cost) * 100:.1f} percentage points of volatility"
    return sentence + "."

"""Plain words for binding constraints (portfolios/explain.py)."""

from __future__ import annotations

from portfolios.explain import binding_sentence


def row(**changes: object) -> dict[str, object]:
    return {
        "kind": "exclusion",
        "label": "Your exclusion of tobacco",
        "assets": ["VTI", "VEA", "IJR"],
        "expected_return_cost": 0.0042,
        "volatility_cost": 0.0011,
        **changes,
    }


def test_an_exclusion_names_the_funds_it_removes_and_its_cost() -> None:
    assert binding_sentence(row()) == (
        "Your exclusion of tobacco removes VTI, VEA and IJR, costing about 0.4 percentage points of expected return "
        "a year and adding about 0.1 percentage points of volatility."
    )


def test_a_limit_holds_its_funds_and_a_constraint_without_funds_binds() -> None:
    held = row(kind="max_position", label="The maximum position", assets=["VTI"], volatility_cost=-0.002)
    assert binding_sentence(held) == (
        "The maximum position holds VTI at its limit, costing about 0.4 percentage points of expected return a year "
        "and taking away about 0.2 percentage points of volatility."
    )
    turnover = row(kind="turnover_limit", label="The turnover limit of 5.0%", assets=[], volatility_cost=0.0001)
    assert binding_sentence(turnover) == (
        "The turnover limit of 5.0% binds, costing about 0.4 percentage points of expected return a year."
    )


def test_a_negative_return_cost_reads_as_none_and_an_unexplained_row_has_no_cost() -> None:
    assert "costing about 0.0 percentage points" in binding_sentence(row(expected_return_cost=-0.001))
    assert binding_sentence(row(expected_return_cost=None)) == "Your exclusion of tobacco removes VTI, VEA and IJR."

"""Segmentation (pure): k chosen by silhouette, every k's score recorded, segments numbered by their centres,
too few investors refused, the same input gives the same output, stored parameters place a new investor."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from profiling.segmentation import (
    FEATURES,
    MAX_SEGMENTS,
    MIN_INVESTORS,
    SegmentationError,
    TooFewInvestorsError,
    cluster_investors,
    nearest_segment,
    segment_label,
    segment_medians,
)

# Typical investors in feature order: tolerance, capacity, effective level, horizon points, age points.
CAUTIOUS_OLDER = (20.0, 25.0, 2.0, 0.5, 0.5)
MIDDLE = (50.0, 55.0, 5.0, 2.0, 2.0)
BOLD_YOUNG = (85.0, 85.0, 9.0, 3.5, 3.8)
SPREAD = (4.0, 4.0, 0.5, 0.3, 0.3)


def three_groups(per_group: int = 15, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated groups, interleaved so the input order says nothing about the group."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for group, centre in enumerate((CAUTIOUS_OLDER, MIDDLE, BOLD_YOUNG)):
        rows.append(np.asarray(centre) + rng.normal(0.0, SPREAD, size=(per_group, len(FEATURES))))
        truth += [group] * per_group
    matrix, labels = np.vstack(rows), np.asarray(truth)
    order = rng.permutation(len(labels))
    return matrix[order], labels[order]


def same_partition(a: tuple[int, ...] | np.ndarray, b: tuple[int, ...] | np.ndarray) -> bool:
    """Equal up to renaming: the pairs (a_i, b_i) form a one-to-one mapping."""
    pairs = set(zip((int(x) for x in a), (int(y) for y in b), strict=True))
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


def test_three_clear_groups_give_three_segments_matching_the_groups() -> None:
    matrix, truth = three_groups()

    result = cluster_investors(matrix)

    assert result.n_segments == 3
    assert same_partition(result.segments, truth)
    assert result.best_silhouette == max(result.silhouette_scores.values())
    assert result.sizes() == {1: 15, 2: 15, 3: 15}


def test_the_silhouette_of_every_k_tried_is_recorded() -> None:
    matrix, _ = three_groups()

    result = cluster_investors(matrix)

    assert list(result.silhouette_scores) == list(range(2, MAX_SEGMENTS + 1))
    assert all(-1.0 <= s <= 1.0 for s in result.silhouette_scores.values())
    assert result.silhouette_json() == {str(k): s for k, s in result.silhouette_scores.items()}
    assert all(result.silhouette_scores[3] > s for k, s in result.silhouette_scores.items() if k != 3)


def test_k_stops_below_the_number_of_investors_and_distinct_rows() -> None:
    # 20 investors but only 4 distinct profiles: k = 2..4 only (a fifth centre would have nothing to hold).
    base = np.array([CAUTIOUS_OLDER, MIDDLE, BOLD_YOUNG, (60.0, 20.0, 3.0, 1.0, 1.0)])
    matrix = np.repeat(base, 5, axis=0)

    result = cluster_investors(matrix)

    assert list(result.silhouette_scores) == [2, 3, 4]
    assert result.n_segments == 4


def test_segments_are_numbered_by_their_centres_and_described_in_plain_words() -> None:
    matrix, truth = three_groups()

    result = cluster_investors(matrix)

    # Segment 1 has the lowest typical tolerance: the cautious, older group.
    assert {int(s) for s in np.asarray(result.segments)[truth == 0]} == {1}
    assert {int(s) for s in np.asarray(result.segments)[truth == 2]} == {3}
    cautious, bold = result.profiles[1], result.profiles[3]
    assert cautious.label == "cautious, low capacity, short horizon, 60 or older"
    assert bold.label == "adventurous, high capacity, long horizon, under 45"
    assert cautious.size == 15 and cautious.share == round(15 / 45, 4)
    assert set(cautious.medians) == set(FEATURES)
    assert abs(cautious.medians["tolerance_score"] - 20.0) < 5  # type: ignore[operator]
    assert abs(bold.medians["effective_risk_level"] - 9.0) < 1  # type: ignore[operator]


def test_the_stored_json_is_plain_and_complete() -> None:
    matrix, _ = three_groups()

    result = cluster_investors(matrix)
    parameters, profiles = result.parameters(), result.profiles_json()

    json.dumps({"parameters": parameters, "profiles": profiles, "scores": result.silhouette_json()})
    assert parameters["features"] == list(FEATURES)
    assert len(parameters["scaler_mean"]) == len(parameters["scaler_scale"]) == len(FEATURES)
    assert len(parameters["centres"]) == 3 and all(len(c) == len(FEATURES) for c in parameters["centres"])
    assert set(profiles) == {"1", "2", "3"}
    assert set(profiles["1"]) == {"size", "share", "label", "medians"}
    assert parameters["smallest_segment"] == {str(k): size for k, size in result.smallest_segment.items()}
    assert list(parameters["smallest_segment"]) == ["2", "3", "4", "5", "6"]
    assert result.smallest_segment[2] == result.smallest_segment[3] == 15
    assert parameters["min_segment_size"] == 3  # 5% of 45, rounded up


def test_stored_parameters_place_every_fitted_investor_in_their_own_segment() -> None:
    matrix, _ = three_groups()
    result = cluster_investors(matrix)
    parameters = json.loads(json.dumps(result.parameters()))  # as read back from the database

    placed = tuple(nearest_segment(list(row), parameters) for row in matrix)

    assert placed == result.segments
    assert nearest_segment(list(BOLD_YOUNG), parameters) == 3
    assert nearest_segment([20.0, 25.0, 2.0, 0.5, None], parameters) == 1  # missing value imputed


def test_missing_values_are_imputed_with_the_column_median() -> None:
    matrix, truth = three_groups()
    age = FEATURES.index("age_points")
    expected_median = float(np.median(matrix[5:, age]))
    matrix[:5, age] = math.nan  # a questionnaire version that did not ask

    result = cluster_investors(matrix)

    assert result.n_segments == 3 and same_partition(result.segments, truth)
    assert result.impute[age] == expected_median


def test_a_column_nobody_has_weighs_nothing() -> None:
    matrix, truth = three_groups()
    matrix[:, FEATURES.index("age_points")] = math.nan

    result = cluster_investors(matrix)

    assert result.n_segments == 3 and same_partition(result.segments, truth)
    assert result.impute[FEATURES.index("age_points")] == 0.0
    assert all(p.medians["age_points"] is None for p in result.profiles.values())


def test_a_k_that_leaves_an_investor_without_peers_is_not_chosen() -> None:
    # Three groups and one investor far from everyone: the lone investor's own segment would score well.
    matrix, truth = three_groups()
    matrix = np.vstack([matrix, [100.0, 5.0, 1.0, 4.0, 0.0]])

    result = cluster_investors(matrix)

    assert result.smallest_segment[4] == 1 and result.silhouette_scores[4] > result.silhouette_scores[3]
    assert result.n_segments == 3 and min(result.sizes().values()) >= result.min_segment_size == 3
    assert same_partition(result.segments[:-1], truth)


def test_segment_medians_describe_a_value_that_is_not_clustered() -> None:
    assert segment_medians([0.0, -3.0, None, 1.0, 2.0], [1, 1, 2, 2, 3], 3) == {1: -1.5, 2: 1.0, 3: 2.0}
    assert segment_medians([None, None], [1, 2], 2) == {1: None, 2: None}


def test_too_few_investors_are_refused() -> None:
    matrix, _ = three_groups()

    with pytest.raises(TooFewInvestorsError) as refused:
        cluster_investors(matrix[: MIN_INVESTORS - 1])

    assert refused.value.n_investors == MIN_INVESTORS - 1
    assert str(refused.value) == f"Segmentation needs at least {MIN_INVESTORS} investors with a profile; there are 19."
    with pytest.raises(TooFewInvestorsError):
        cluster_investors([])


def test_identical_investors_are_refused() -> None:
    with pytest.raises(SegmentationError, match="nothing to segment"):
        cluster_investors([list(MIDDLE)] * 30)


def test_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(SegmentationError, match="Expected rows of 5 features"):
        cluster_investors(np.zeros((30, 4)))


def test_the_same_input_gives_the_same_segmentation() -> None:
    matrix, _ = three_groups(seed=11)

    first, second = cluster_investors(matrix), cluster_investors(matrix.copy())

    assert first == second
    assert first.parameters() == second.parameters()
    assert cluster_investors(matrix.tolist()) == first  # lists and arrays alike


@pytest.mark.parametrize(
    ("medians", "label"),
    [
        ({"tolerance_score": 10, "capacity_score": 20, "horizon_points": 0, "age_points": 0},
         "cautious, low capacity, short horizon, 60 or older"),
        ({"tolerance_score": 50, "capacity_score": 64.9, "horizon_points": 2, "age_points": 2},
         "balanced, medium capacity, medium horizon, 45 to 59"),
        ({"tolerance_score": 65, "capacity_score": 90, "horizon_points": 4, "age_points": 3},
         "adventurous, high capacity, long horizon, under 45"),
        ({"tolerance_score": 30}, "cautious"),
        ({}, "mixed"),
    ],
)  # fmt: skip
def test_labels_come_from_the_medians(medians: dict[str, float], label: str) -> None:
    assert segment_label(medians) == label

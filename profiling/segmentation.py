"""Investor segments: standardized profile features clustered with k-means (pure: numpy and scikit-learn, no Django).

Segments group investors with similar profiles so an advisor can triage a book of clients and compare a client
with peers. They are descriptive only: nothing reads a segment to set or change a risk level.
Documented in ``docs/segments.md``.

* **Features** (``FEATURES``), one row per investor, in their own units: tolerance score (0-100), capacity score
  (0-100), effective risk level (1-10), horizon points and age points (0-4, from the answers; 4 is the longest
  horizon and the youngest age). A missing value (a questionnaire version without the question) is replaced by
  the column median of the fitted data; that median is stored so a later investor is treated the same way.
  The behavioural score and inconsistency flags are *not* clustered: almost everyone has a score of 0 and no flag,
  and after scaling the few who differ sit so far out that k-means gives them segments of one or two (the service
  reports both per segment instead).
* **Pipeline**: ``StandardScaler`` then ``KMeans(n_init=10, random_state=RANDOM_STATE)``, so every feature weighs
  the same whatever its units.
* **Number of segments**: every k from 2 to ``min(MAX_SEGMENTS, n - 1)`` (and at most the number of distinct rows)
  is fitted; the k with the highest silhouette score (on the scaled features) wins, the smaller k on a tie. A k
  whose smallest segment holds fewer than ``min_segment_size(n)`` investors (5%, at least 2) is not chosen while
  another k qualifies: a segment of one has no peers to compare with. The score and the smallest segment of every
  k tried are returned.
* **Segment numbers** run from 1 and are ordered by the centre's typical values in feature order (segment 1 has
  the lowest typical tolerance score), so renumbering does not depend on k-means' arbitrary label order.
* **Stored parameters** (imputation medians, scaler mean and scale, centres in scaled units) are plain numbers:
  ``nearest_segment`` places a new investor from them with no pickled estimator.

Fewer than ``MIN_INVESTORS`` investors is refused with ``TooFewInvestorsError``: silhouette scores on a handful of
points are noise, and segment medians would describe one or two people.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES: tuple[str, ...] = (
    "tolerance_score",
    "capacity_score",
    "effective_risk_level",
    "horizon_points",
    "age_points",
)
FEATURE_LABELS: dict[str, str] = {
    "tolerance_score": "tolerance",
    "capacity_score": "capacity",
    "effective_risk_level": "risk level",
    "horizon_points": "horizon points",
    "age_points": "age points",
}
MIN_INVESTORS = 20
MIN_SEGMENTS = 2
MAX_SEGMENTS = 6
N_INIT = 10
RANDOM_STATE = 2026
# Above this many investors the silhouette is computed on a fixed-seed sample: the full score is O(n^2).
SILHOUETTE_SAMPLE = 10_000
ALGORITHM = f"StandardScaler+KMeans(n_init={N_INIT},random_state={RANDOM_STATE})"
MEDIAN_DECIMALS = 2
MIN_SEGMENT_SHARE = 0.05


class SegmentationError(ValueError):
    """The data cannot be segmented; the message says why."""


class TooFewInvestorsError(SegmentationError):
    def __init__(self, n_investors: int, minimum: int) -> None:
        super().__init__(f"Segmentation needs at least {minimum} investors with a profile; there are {n_investors}.")
        self.n_investors = n_investors
        self.minimum = minimum


@dataclass(frozen=True)
class SegmentProfile:
    """The typical member of one segment, in the features' own units."""

    segment: int
    size: int
    share: float
    medians: dict[str, float | None]
    label: str

    def as_json(self) -> dict[str, Any]:
        return {"size": self.size, "share": self.share, "label": self.label, "medians": dict(self.medians)}


@dataclass(frozen=True)
class Segmentation:
    features: tuple[str, ...]
    n_segments: int
    segments: tuple[int, ...]  # the segment (1..n_segments) of each input row, in input order
    silhouette_scores: dict[int, float]  # every k tried
    smallest_segment: dict[int, int]  # every k tried: the size of its smallest segment
    min_segment_size: int
    impute: tuple[float, ...]
    scaler_mean: tuple[float, ...]
    scaler_scale: tuple[float, ...]
    centres: tuple[tuple[float, ...], ...]  # scaled units; centres[i] is segment i + 1
    profiles: dict[int, SegmentProfile]

    @property
    def algorithm(self) -> str:
        return ALGORITHM

    @property
    def best_silhouette(self) -> float:
        return self.silhouette_scores[self.n_segments]

    def parameters(self) -> dict[str, Any]:
        """Everything ``nearest_segment`` needs, as JSON-ready lists."""
        return {
            "features": list(self.features),
            "impute": list(self.impute),
            "scaler_mean": list(self.scaler_mean),
            "scaler_scale": list(self.scaler_scale),
            "centres": [list(c) for c in self.centres],
            "smallest_segment": {str(k): size for k, size in self.smallest_segment.items()},
            "min_segment_size": self.min_segment_size,
            "random_state": RANDOM_STATE,
            "n_init": N_INIT,
        }

    def silhouette_json(self) -> dict[str, float]:
        return {str(k): score for k, score in self.silhouette_scores.items()}

    def profiles_json(self) -> dict[str, dict[str, Any]]:
        return {str(s): p.as_json() for s, p in self.profiles.items()}

    def sizes(self) -> dict[int, int]:
        return {s: p.size for s, p in self.profiles.items()}


def _matrix(rows: Sequence[Sequence[float | None]] | np.ndarray, n_features: int) -> np.ndarray:
    if isinstance(rows, np.ndarray):
        matrix = rows.astype(float)
    else:
        matrix = np.array([[math.nan if v is None else float(v) for v in row] for row in rows], dtype=float)
    if matrix.size == 0:
        return matrix.reshape(0, n_features)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise SegmentationError(f"Expected rows of {n_features} features, got shape {matrix.shape}.")
    if np.isinf(matrix).any():
        raise SegmentationError("Feature values must be finite.")
    return matrix


def _column_medians(matrix: np.ndarray) -> np.ndarray:
    medians = np.zeros(matrix.shape[1])
    for j in range(matrix.shape[1]):
        present = matrix[~np.isnan(matrix[:, j]), j]
        # A feature nobody has yet (no behavioural scores at all) is a constant column: it weighs nothing.
        medians[j] = float(np.median(present)) if present.size else 0.0
    return medians


def _impute(matrix: np.ndarray, medians: np.ndarray) -> np.ndarray:
    filled = matrix.copy()
    missing = np.isnan(filled)
    filled[missing] = np.take(medians, np.nonzero(missing)[1])
    return filled


def _pipeline(k: int, random_state: int) -> Pipeline:
    return Pipeline(
        [("scale", StandardScaler()), ("cluster", KMeans(n_clusters=k, n_init=N_INIT, random_state=random_state))]
    )


def _round(value: float) -> float:
    return round(float(value), MEDIAN_DECIMALS)


def _band(value: float | None, bands: Sequence[tuple[float, str]], top: str) -> str | None:
    if value is None:
        return None
    for upper, word in bands:
        if value < upper:
            return word
    return top


def segment_label(medians: Mapping[str, float | None]) -> str:
    """A few plain words from a segment's medians, e.g. "cautious, low capacity, short horizon, 60 or older"."""
    words = [
        _band(medians.get("tolerance_score"), [(35, "cautious"), (65, "balanced")], "adventurous"),
        _band(medians.get("capacity_score"), [(35, "low capacity"), (65, "medium capacity")], "high capacity"),
        # horizon points: 0 under 3 years, 1 3-5, 2 5-10, 3 10-20, 4 over 20
        _band(medians.get("horizon_points"), [(1.5, "short horizon"), (2.5, "medium horizon")], "long horizon"),
        # age points: 0 over 70, 1 60-69, 2 45-59, 3 30-44, 4 under 30
        _band(medians.get("age_points"), [(1.5, "60 or older"), (2.5, "45 to 59")], "under 45"),
    ]
    return ", ".join(w for w in words if w) or "mixed"


def _profiles(
    raw: np.ndarray, segments: np.ndarray, impute: np.ndarray, features: Sequence[str], k: int
) -> dict[int, SegmentProfile]:
    n = raw.shape[0]
    profiles = {}
    for segment in range(1, k + 1):
        members = raw[segments == segment]
        medians: dict[str, float | None] = {}
        for j, name in enumerate(features):
            present = members[~np.isnan(members[:, j]), j]
            medians[name] = _round(np.median(present)) if present.size else None
        shown = {name: (v if v is not None else float(impute[j])) for j, (name, v) in enumerate(medians.items())}
        profiles[segment] = SegmentProfile(
            segment=segment,
            size=int(members.shape[0]),
            share=round(members.shape[0] / n, 4),
            medians=medians,
            label=segment_label(shown),
        )
    return profiles


def min_segment_size(n_investors: int) -> int:
    return max(2, math.ceil(MIN_SEGMENT_SHARE * n_investors))


def segment_medians(
    values: Sequence[float | None], segments: Sequence[int], n_segments: int
) -> dict[int, float | None]:
    """The median of a value that is described but not clustered (e.g. the behavioural score), per segment 1..k."""
    column = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    labels = np.asarray(segments, dtype=int)
    medians: dict[int, float | None] = {}
    for segment in range(1, n_segments + 1):
        present = column[(labels == segment) & ~np.isnan(column)]
        medians[segment] = _round(np.median(present)) if present.size else None
    return medians


def cluster_investors(
    rows: Sequence[Sequence[float | None]] | np.ndarray,
    *,
    features: Sequence[str] = FEATURES,
    min_investors: int = MIN_INVESTORS,
    max_segments: int = MAX_SEGMENTS,
    random_state: int = RANDOM_STATE,
) -> Segmentation:
    """Choose k by silhouette, fit scaler + k-means, and describe each segment. Same input, same output."""
    features = tuple(features)
    raw = _matrix(rows, len(features))
    n = raw.shape[0]
    if n < max(min_investors, MIN_SEGMENTS + 1):
        raise TooFewInvestorsError(n, max(min_investors, MIN_SEGMENTS + 1))
    impute = _column_medians(raw)
    matrix = _impute(raw, impute)
    distinct = np.unique(matrix, axis=0).shape[0]
    if distinct < MIN_SEGMENTS:
        raise SegmentationError("Every investor has the same features: there is nothing to segment.")
    candidates = range(MIN_SEGMENTS, min(max_segments, n - 1, distinct) + 1)
    sample = SILHOUETTE_SAMPLE if n > SILHOUETTE_SAMPLE else None

    scores: dict[int, float] = {}
    smallest: dict[int, int] = {}
    fitted: dict[int, Pipeline] = {}
    for k in candidates:
        pipeline = _pipeline(k, random_state).fit(matrix)
        labels = pipeline.named_steps["cluster"].labels_
        if np.unique(labels).size < MIN_SEGMENTS:
            continue
        scaled = pipeline.named_steps["scale"].transform(matrix)
        scores[k] = float(silhouette_score(scaled, labels, sample_size=sample, random_state=random_state))
        smallest[k] = int(np.bincount(labels).min())
        fitted[k] = pipeline
    if not scores:
        raise SegmentationError("No number of segments separated the investors.")
    minimum = min_segment_size(n)
    eligible = [k for k in scores if smallest[k] >= minimum] or list(scores)
    best = max(eligible, key=lambda k: (scores[k], -k))  # highest score; the smaller k on a tie

    pipeline = fitted[best]
    scaler: StandardScaler = pipeline.named_steps["scale"]
    kmeans: KMeans = pipeline.named_steps["cluster"]
    centres_scaled = np.asarray(kmeans.cluster_centers_, dtype=float)
    centres_original = scaler.inverse_transform(centres_scaled)
    # Number segments by their centres (lexicographic in feature order), not by k-means' arbitrary labels.
    order = sorted(range(best), key=lambda c: tuple(centres_original[c]))
    number_of = {cluster: position + 1 for position, cluster in enumerate(order)}
    segments = np.array([number_of[int(label)] for label in kmeans.labels_], dtype=int)

    return Segmentation(
        features=features,
        n_segments=best,
        segments=tuple(int(s) for s in segments),
        silhouette_scores={k: round(scores[k], 6) for k in sorted(scores)},
        smallest_segment={k: smallest[k] for k in sorted(smallest)},
        min_segment_size=minimum,
        impute=tuple(float(v) for v in impute),
        scaler_mean=tuple(float(v) for v in scaler.mean_),
        scaler_scale=tuple(float(v) for v in scaler.scale_),
        centres=tuple(tuple(float(v) for v in centres_scaled[c]) for c in order),
        profiles=_profiles(raw, segments, impute, features, best),
    )


def nearest_segment(row: Sequence[float | None], parameters: Mapping[str, Any]) -> int:
    """The segment (1..k) of one investor, from stored ``Segmentation.parameters()``: impute, scale, nearest centre."""
    impute = np.asarray(parameters["impute"], dtype=float)
    if len(row) != impute.size:
        raise SegmentationError(f"Expected {impute.size} features, got {len(row)}.")
    values = np.array([math.nan if v is None else float(v) for v in row], dtype=float)
    values = np.where(np.isnan(values), impute, values)
    scaled = (values - np.asarray(parameters["scaler_mean"], dtype=float)) / np.asarray(
        parameters["scaler_scale"], dtype=float
    )
    centres = np.asarray(parameters["centres"], dtype=float)
    distances = np.linalg.norm(centres - scaled, axis=1)
    return int(np.argmin(distances)) + 1

"""Benchmark: the nightly behavioural scoring step on 100,000 synthetic investors (about 1,000,000 events).

Times the pure, vectorised step the nightly job runs (``profiling.behaviour.score_events`` plus the adjustments),
on event rows shaped as the job's one query returns them (investor id, event type code, age in days). The
in-process reference is a plain Python loop over each investor's events on a 10,000-investor sample; both are run
on that sample, checked to agree, and the ratio printed. Not a test: run it and read the numbers.

    .venv/bin/python benchmarks/behaviour.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiling.behaviour import (  # after the path set-up, so the script runs from anywhere
    CODES,
    HALF_LIVES_COUNTED,
    LOOKBACK_DAYS,
    WEIGHTS,
    adjustment_for,
    adjustments_for,
    score_events,
)

SEED = 20260801
INVESTORS = 100_000
EVENTS = 1_000_000
SAMPLE_INVESTORS = 10_000
REPEATS = 5
# How often each type occurs among events: logins spikes and rejections are common, panic requests rare.
FREQUENCY = {
    "panic_sell_request": 0.05,
    "answers_changed_after_loss": 0.05,
    "contributions_paused": 0.10,
    "login_spike_in_drawdown": 0.40,
    "recommendation_rejected": 0.25,
    "added_money_in_fall": 0.15,
}


def synthetic_events(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    investor_ids = rng.integers(1, INVESTORS + 1, size=EVENTS)
    types = rng.choice(np.array(CODES, dtype=object), size=EVENTS, p=[FREQUENCY[c] for c in CODES])
    ages = rng.integers(0, LOOKBACK_DAYS + 1, size=EVENTS)  # the job's window: up to two years old
    return investor_ids, types, ages


def scoring_step(investor_ids: np.ndarray, types: np.ndarray, ages: np.ndarray) -> np.ndarray:
    scores = score_events(investor_ids, types, ages)
    return adjustments_for(scores.scores)


def python_loop(investor_ids: list[int], types: list[str], ages: list[int]) -> dict[int, tuple[float, int]]:
    """The reference: group each investor's events, then score them one investor at a time."""
    by_investor: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for investor_id, code, age in zip(investor_ids, types, ages, strict=True):
        by_investor[investor_id].append((code, age))
    result = {}
    for investor_id, events in by_investor.items():
        score = 0.0
        for code, age in events:
            weight = WEIGHTS[code]
            if 0 <= age <= min(HALF_LIVES_COUNTED * weight.half_life_days, LOOKBACK_DAYS):
                score += weight.weight * 0.5 ** (age / weight.half_life_days)
        result[investor_id] = (score, adjustment_for(score))
    return result


def timed(function, *args, repeats: int = REPEATS) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main() -> None:
    rng = np.random.default_rng(SEED)
    investor_ids, types, ages = synthetic_events(rng)
    print(f"synthetic: {INVESTORS:,} investors, {EVENTS:,} events, {len(CODES)} event types, seed {SEED}")

    full_seconds, adjustments = timed(scoring_step, investor_ids, types, ages)
    adjustments = np.asarray(adjustments)
    print(f"vectorised scoring, {len(adjustments):,} investors scored: {full_seconds:.3f} s (median of {REPEATS})")
    print(f"  adjustments: {int((adjustments == -1).sum()):,} one step down, {int((adjustments == 0).sum()):,} none")

    sample = investor_ids <= SAMPLE_INVESTORS
    s_ids, s_types, s_ages = investor_ids[sample], types[sample], ages[sample]
    vector_seconds, _ = timed(score_events, s_ids, s_types, s_ages)
    loop_seconds, loop_result = timed(python_loop, s_ids.tolist(), s_types.tolist(), s_ages.tolist(), repeats=3)
    vector = score_events(s_ids, s_types, s_ages)
    reference = np.array([loop_result[int(i)][0] for i in vector.investor_ids])  # type: ignore[index]
    assert np.allclose(vector.scores, reference, rtol=1e-9, atol=1e-9), "vectorised and loop scores disagree"
    speedup = loop_seconds / vector_seconds
    print(
        f"sample of {SAMPLE_INVESTORS:,} investors ({int(sample.sum()):,} events): python per-investor loop "
        f"{loop_seconds:.3f} s, vectorised {vector_seconds:.4f} s (scores agree)"
    )
    print(f"  the loop at 100,000 investors would take about {loop_seconds * INVESTORS / SAMPLE_INVESTORS:.1f} s")
    print(f"BENCH behaviour_scoring_100k_seconds {full_seconds:.3f} s target <10")
    print(f"BENCH behaviour_speedup_vs_python_loop {speedup:.1f} x target >=10")


if __name__ == "__main__":
    main()
